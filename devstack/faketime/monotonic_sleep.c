/* Preloaded beside libfaketime by `make test-at` (docs/TESTING.md).
 *
 * Under libfaketime 0.9.10 (Debian 12) Python cannot run the suite at a faked date:
 * - with the monotonic clock faked, a lock or Event wait with a timeout never returns
 *   (CPython passes a faked monotonic deadline to sem_clockwait, which libfaketime leaves alone);
 * - with FAKETIME_DONT_FAKE_MONOTONIC=1, time.sleep() fails with EINVAL (libfaketime shifts the
 *   absolute CLOCK_MONOTONIC deadline of clock_nanosleep by the faked offset all the same).
 * So we keep the monotonic clock real and send monotonic sleeps straight to the kernel; every
 * other clock still goes through libfaketime. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef int (*clock_nanosleep_fn)(clockid_t, int, const struct timespec *, struct timespec *);

int clock_nanosleep(clockid_t id, int flags, const struct timespec *request, struct timespec *remain) {
    if (id == CLOCK_MONOTONIC) {
        return syscall(SYS_clock_nanosleep, id, flags, request, remain) == -1 ? errno : 0;
    }
    clock_nanosleep_fn next = (clock_nanosleep_fn)dlsym(RTLD_NEXT, "clock_nanosleep");
    return next(id, flags, request, remain);
}
