/* test_parity.c — ctrain's ResNets against PyTorch: fixtures written by tools/make_fixtures.py hold a small
 * network's weights, a batch, soft targets, PyTorch's logits, loss, every gradient, the BN running statistics
 * after one step and the weights after 3 optimizer steps. Each is checked on the ref and the cpu backend (and,
 * with CTRAIN_TEST_DEVICE=cuda, on the GPU instead):
 * logits and loss to relative error 1e-4, gradients, running statistics and updated weights to 1e-3
 * (relative to the largest magnitude of each tensor). The runner is parity_fixture.c, shared with test_surgery.c. */
#include <stdlib.h>

#include "parity_fixture.h"
#include "testutil.h"

static void test_resnet18_ref(void **s) { (void)s; parity_run_fixture("parity_resnet18_w4.safetensors", "ref"); }
static void test_resnet18_cpu(void **s) { (void)s; parity_run_fixture("parity_resnet18_w4.safetensors", "cpu"); }
static void test_bottleneck_ref(void **s) { (void)s; parity_run_fixture("parity_bottleneck_w4.safetensors", "ref"); }
static void test_bottleneck_cpu(void **s) { (void)s; parity_run_fixture("parity_bottleneck_w4.safetensors", "cpu"); }
static void test_cifar_ref(void **s) { (void)s; parity_run_fixture("parity_cifar_resnet8_w4.safetensors", "ref"); }
static void test_cifar_cpu(void **s) { (void)s; parity_run_fixture("parity_cifar_resnet8_w4.safetensors", "cpu"); }

/* CTRAIN_TEST_DEVICE=cuda (the ctest label gpu): the same fixtures on the GPU, in fp32. */
static void test_resnet18_dev(void **s) { (void)s; parity_run_fixture("parity_resnet18_w4.safetensors", getenv("CTRAIN_TEST_DEVICE")); }
static void test_bottleneck_dev(void **s) { (void)s; parity_run_fixture("parity_bottleneck_w4.safetensors", getenv("CTRAIN_TEST_DEVICE")); }
static void test_cifar_dev(void **s) { (void)s; parity_run_fixture("parity_cifar_resnet8_w4.safetensors", getenv("CTRAIN_TEST_DEVICE")); }

int main(void) {
    const char *dev = getenv("CTRAIN_TEST_DEVICE");
    if (dev && *dev) {
        if (tu_device_missing(dev)) return TU_SKIPPED;
        const struct CMUnitTest dev_tests[] = {
            cmocka_unit_test(test_resnet18_dev), cmocka_unit_test(test_bottleneck_dev), cmocka_unit_test(test_cifar_dev),
        };
        return cmocka_run_group_tests(dev_tests, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resnet18_ref), cmocka_unit_test(test_resnet18_cpu),
        cmocka_unit_test(test_bottleneck_ref), cmocka_unit_test(test_bottleneck_cpu),
        cmocka_unit_test(test_cifar_ref),    cmocka_unit_test(test_cifar_cpu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
