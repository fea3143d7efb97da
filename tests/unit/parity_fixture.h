/* parity_fixture.h — the PyTorch parity fixture runner shared by the parity and surgery tests. */
#ifndef CTRAIN_TESTS_PARITY_FIXTURE_H
#define CTRAIN_TESTS_PARITY_FIXTURE_H

/* Runs fixture file (in CTRAIN_FIXTURES) on the backend named backend; fails the current cmocka test on any
 * mismatch (see parity_fixture.c for what is compared and to which tolerance). */
void parity_run_fixture(const char *file, const char *backend);

#endif
