/* cpu_bn_avx512.c — cpu_bn.c compiled a second time, for x86-64-v4 (AVX-512; CMakeLists.txt sets -march for
 * this file), as the table cpu_bn_avx512. Only cpu_bn_select's choice runs it, on CPUs that have AVX-512. */
#define CPU_BN_AVX512 1
#include "backend/cpu/cpu_bn.c"
