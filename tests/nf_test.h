/*  A minimal test harness: CHECK records a failure with file:line and
    goes on; nf_test_done() prints the tally and returns the exit status. */
#ifndef NF_TEST_H
#define NF_TEST_H

#include <stdint.h>
#include <stdio.h>

extern int nf_test_failures;
extern int nf_test_checks;

#define CHECK(cond)                                                            \
    do {                                                                       \
        nf_test_checks++;                                                      \
        if (!(cond)) {                                                         \
            nf_test_failures++;                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                      \
    } while (0)

/* CHECK that an int-returning call gives NF_OK; prints the error otherwise. */
#define CHECK_OK(call)                                                         \
    do {                                                                       \
        int rc_ = (call);                                                      \
        nf_test_checks++;                                                      \
        if (rc_ != 0) {                                                        \
            nf_test_failures++;                                                \
            fprintf(stderr, "%s:%d: %s returned %d (%s): %s\n", __FILE__, __LINE__, \
                    #call, rc_, nf_strerror(rc_), nf_error_msg());             \
        }                                                                      \
    } while (0)

/* A fresh temporary directory (mkdtemp under $TMPDIR or /tmp); caller frees. */
char *nf_test_tmpdir(void);

/* rm -rf of a test directory. */
void nf_test_rmdir(const char *dir);

/* Deterministic pseudo-random numbers (splitmix64): tests regenerate the
   same data from the same seed. */
uint64_t nf_test_rand(uint64_t *state);

int nf_test_done(const char *name);

#endif
