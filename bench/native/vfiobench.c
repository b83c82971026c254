// SPDX-License-Identifier: MIT
// C baselines for the host hot-path benchmarks (bench/Vfio.Benchmarks/HotPathBenchmarks.cs), called from the same
// process. Each loop runs its operation `count` times inside C, so the one managed-to-native call per benchmark
// invocation is amortised and the result is the C cost per operation.
// Build: gcc -O2 -shared -fPIC -o libvfiobench.so vfiobench.c   (bench.sh does this)
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <unistd.h>

// H1: a raw volatile 32-bit read of every word of `words` words at p, `rounds` times; returns the wrapping sum.
uint32_t vb_read32_loop(const volatile uint32_t *p, size_t words, size_t rounds)
{
    uint32_t sum = 0;
    for (size_t r = 0; r < rounds; r++)
        for (size_t i = 0; i < words; i++)
            sum += p[i];
    return sum;
}

// H1: a raw volatile 32-bit write of `value + i` to every word, `rounds` times.
void vb_write32_loop(volatile uint32_t *p, size_t words, size_t rounds, uint32_t value)
{
    for (size_t r = 0; r < rounds; r++)
        for (size_t i = 0; i < words; i++)
            p[i] = value + (uint32_t)i;
}

// H2: `count` preads of `length` bytes at offset 0; returns the bytes read in total, or -errno of the first failure.
int64_t vb_pread_loop(int fd, void *buffer, size_t length, size_t count)
{
    int64_t total = 0;
    for (size_t i = 0; i < count; i++) {
        ssize_t rc;
        do
            rc = pread(fd, buffer, length, 0);
        while (rc < 0 && errno == EINTR);
        if (rc < 0)
            return -errno;
        total += rc;
    }
    return total;
}

// H2: `count` ioctls of `request` with argument 0; returns how many failed with `expected_errno` (ENOTTY on an
// eventfd), or -errno of the first other result.
int64_t vb_ioctl_loop(int fd, unsigned long request, size_t count, int expected_errno)
{
    int64_t matched = 0;
    for (size_t i = 0; i < count; i++) {
        int rc;
        do
            rc = ioctl(fd, request, 0);
        while (rc < 0 && errno == EINTR);
        if (rc >= 0)
            return -1000000;
        if (errno != expected_errno)
            return -errno;
        matched++;
    }
    return matched;
}

// H2 breakdown: a call that fails like a syscall (returns -1, errno ENOTTY) but does no kernel work, so the managed
// wrapper's own cost (transition, SafeHandle reference count, SetLastError, retry loop) is measured without the
// kernel's time and its noise.
int vb_fail(int fd)
{
    (void)fd;
    errno = ENOTTY;
    return -1;
}
