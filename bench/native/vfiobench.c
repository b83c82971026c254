// SPDX-License-Identifier: MIT
// C baselines for the host hot-path benchmarks (bench/Vfio.Benchmarks/HotPathBenchmarks.cs), called from the same
// process. Each loop runs its operation `count` times inside C, so the one managed-to-native call per benchmark
// invocation is amortised and the result is the C cost per operation.
// Build: gcc -O2 -shared -fPIC -o libvfiobench.so vfiobench.c   (bench.sh does this)
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>
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

// H2: `count` eventfd write(1)+read pairs on a non-blocking eventfd; returns the sum of the counts read (== count),
// or -errno of the first failure.
int64_t vb_eventfd_loop(int fd, size_t count)
{
    int64_t total = 0;
    for (size_t i = 0; i < count; i++) {
        uint64_t value = 1;
        if (write(fd, &value, sizeof value) != sizeof value)
            return -errno;
        if (read(fd, &value, sizeof value) != sizeof value)
            return -errno;
        total += (int64_t)value;
    }
    return total;
}

// H4 (interrupt round trip): a "device" thread that answers each doorbell with one interrupt. The doorbell and the
// interrupt are eventfds (the library's non-blocking ones); the device blocks in poll, then reads the doorbell and
// writes the interrupt, as a device raising MSI on a register write would.
struct vb_device {
    pthread_t thread;
    int doorbell, irq, stop;
};

static void *vb_device_run(void *arg)
{
    struct vb_device *d = arg;
    struct pollfd pfd = { .fd = d->doorbell, .events = POLLIN };
    while (!__atomic_load_n(&d->stop, __ATOMIC_ACQUIRE)) {
        uint64_t value;
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        if (read(d->doorbell, &value, sizeof value) != sizeof value)
            continue;
        for (uint64_t i = 0; i < value; i++) {
            uint64_t one = 1;
            if (write(d->irq, &one, sizeof one) != sizeof one)
                break;
        }
    }
    return NULL;
}

// Starts the device thread; `cpu` >= 0 pins it to that CPU. Returns a handle for vb_device_stop, or NULL.
void *vb_device_start(int doorbell, int irq, int cpu)
{
    struct vb_device *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->doorbell = doorbell;
    d->irq = irq;
    if (pthread_create(&d->thread, NULL, vb_device_run, d) != 0) {
        free(d);
        return NULL;
    }
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        pthread_setaffinity_np(d->thread, sizeof set, &set);
    }
    return d;
}

void vb_device_stop(void *handle)
{
    struct vb_device *d = handle;
    __atomic_store_n(&d->stop, 1, __ATOMIC_RELEASE);
    pthread_join(d->thread, NULL);
    free(d);
}

static int64_t vb_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

// `count` round trips: ring the doorbell, then wait for the interrupt (poll, then read). When `ns` is not NULL, the
// time of round trip i goes to ns[i]. Returns the sum of the interrupt counts read (== count when none is lost or
// extra), or -errno of the first failure.
int64_t vb_roundtrip_loop(int doorbell, int irq, size_t count, int64_t *ns)
{
    int64_t total = 0;
    struct pollfd pfd = { .fd = irq, .events = POLLIN };
    for (size_t i = 0; i < count; i++) {
        int64_t start = ns ? vb_now_ns() : 0;
        uint64_t value = 1;
        if (write(doorbell, &value, sizeof value) != sizeof value)
            return -errno;
        for (;;) {
            if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
                return -errno;
            ssize_t rc = read(irq, &value, sizeof value);
            if (rc == sizeof value)
                break;
            if (errno != EAGAIN && errno != EINTR)
                return -errno;
        }
        if (ns)
            ns[i] = vb_now_ns() - start;
        total += (int64_t)value;
    }
    return total;
}

// Pins every thread of the process (and so the threads they start later) to `cpu`, so the library's own threads
// (interrupt pollers, thread pool) sit where the waiter does. Returns the number of threads pinned or -errno.
int vb_pin_process(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    DIR *dir = opendir("/proc/self/task");
    if (!dir)
        return -errno;
    int pinned = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        int tid = atoi(entry->d_name);
        if (tid > 0 && sched_setaffinity(tid, sizeof set, &set) == 0)
            pinned++;
    }
    closedir(dir);
    return pinned;
}
