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

// Waits for the interrupt eventfd as C would: poll, then read the count. Returns 0 or -errno.
static int vb_wait(struct pollfd *pfd, uint64_t *value)
{
    for (;;) {
        if (poll(pfd, 1, -1) < 0 && errno != EINTR)
            return -errno;
        if (read(pfd->fd, value, sizeof *value) == sizeof *value)
            return 0;
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
    }
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
        int rc = vb_wait(&pfd, &value);
        if (rc < 0)
            return rc;
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

// ---- Guest harness (bench/Vfio.Benchmarks/GuestGoals.cs): the same operations as the library's on the same fds,
// buffers and BAR mapping, in the testbed's QEMU guest. ----

// VFIO Type1 and iommufd argument blocks and request numbers (linux/vfio.h, linux/iommufd.h; written out so the
// shim builds where the headers lack iommufd).
struct vb_type1_map { uint32_t argsz, flags; uint64_t vaddr, iova, size; };
struct vb_type1_unmap { uint32_t argsz, flags; uint64_t iova, size; };
struct vb_ioas_map { uint32_t size, flags, ioas_id, reserved; uint64_t user_va, length, iova; };
struct vb_ioas_unmap { uint32_t size, ioas_id; uint64_t iova, length; };
#define VB_VFIO_IOMMU_MAP_DMA 0x3b71UL     // _IO(';', 100 + 13)
#define VB_VFIO_IOMMU_UNMAP_DMA 0x3b72UL   // _IO(';', 100 + 14)
#define VB_IOMMU_IOAS_MAP 0x3b85UL         // _IO(';', 0x85)
#define VB_IOMMU_IOAS_UNMAP 0x3b86UL       // _IO(';', 0x86)

static int vb_ioctl(int fd, unsigned long request, void *arg)
{
    int rc;
    do
        rc = ioctl(fd, request, arg);
    while (rc < 0 && errno == EINTR);
    return rc < 0 ? -errno : rc;
}

static int vb_type1_map(int container, uint64_t vaddr, uint64_t iova, uint64_t size)
{
    struct vb_type1_map map = { sizeof map, 3 /* READ | WRITE */, vaddr, iova, size };
    return vb_ioctl(container, VB_VFIO_IOMMU_MAP_DMA, &map);
}

// Returns the bytes the kernel reports unmapped, or -errno.
static int64_t vb_type1_unmap(int container, uint64_t iova, uint64_t size)
{
    struct vb_type1_unmap unmap = { sizeof unmap, 0, iova, size };
    int rc = vb_ioctl(container, VB_VFIO_IOMMU_UNMAP_DMA, &unmap);
    return rc < 0 ? rc : (int64_t)unmap.size;
}

// G1: maps `pages` 4 KiB pages (page i at vaddr + 4096 i to iovas[i]) through a Type1 container, then unmaps each.
// Returns the bytes unmapped in total, or -errno of the first failure.
int64_t vb_type1_pages(int container, uint64_t vaddr, const uint64_t *iovas, size_t pages)
{
    for (size_t i = 0; i < pages; i++) {
        int rc = vb_type1_map(container, vaddr + 4096 * i, iovas[i], 4096);
        if (rc < 0)
            return rc;
    }
    int64_t total = 0;
    for (size_t i = 0; i < pages; i++) {
        int64_t rc = vb_type1_unmap(container, iovas[i], 4096);
        if (rc < 0)
            return rc;
        total += rc;
    }
    return total;
}

// G3 (Type1): `count` map + unmap pairs of [vaddr, vaddr + size) at one IOVA. Returns the bytes unmapped or -errno.
int64_t vb_type1_fixed(int container, uint64_t vaddr, uint64_t iova, uint64_t size, size_t count)
{
    int64_t total = 0;
    for (size_t i = 0; i < count; i++) {
        int rc = vb_type1_map(container, vaddr, iova, size);
        if (rc < 0)
            return rc;
        int64_t unmapped = vb_type1_unmap(container, iova, size);
        if (unmapped < 0)
            return unmapped;
        total += unmapped;
    }
    return total;
}

// G2 and G3 (iommufd): `count` IOMMU_IOAS_MAP (fixed IOVA, read + write) + IOMMU_IOAS_UNMAP pairs. Returns the bytes
// unmapped or -errno.
int64_t vb_ioas_fixed(int iommufd, uint32_t ioas, uint64_t vaddr, uint64_t iova, uint64_t length, size_t count)
{
    int64_t total = 0;
    for (size_t i = 0; i < count; i++) {
        struct vb_ioas_map map = { sizeof map, 1 | 2 | 4 /* FIXED_IOVA | WRITEABLE | READABLE */, ioas, 0, vaddr, length, iova };
        int rc = vb_ioctl(iommufd, VB_IOMMU_IOAS_MAP, &map);
        if (rc < 0)
            return rc;
        struct vb_ioas_unmap unmap = { sizeof unmap, ioas, iova, length };
        rc = vb_ioctl(iommufd, VB_IOMMU_IOAS_UNMAP, &unmap);
        if (rc < 0)
            return rc;
        total += (int64_t)unmap.length;
    }
    return total;
}

// G6: `count` preads of 4 bytes at `offset` of a device fd; the last value read goes to *value. Returns the bytes
// read in total, or -errno.
int64_t vb_pread32_loop(int fd, int64_t offset, size_t count, uint32_t *value)
{
    int64_t total = 0;
    for (size_t i = 0; i < count; i++) {
        ssize_t rc;
        do
            rc = pread(fd, value, 4, offset);
        while (rc < 0 && errno == EINTR);
        if (rc < 0)
            return -errno;
        total += rc;
    }
    return total;
}

// G7: `count` MSI round trips with QEMU's edu: write 1 to the raise register (bar + raise), wait for the interrupt
// eventfd (poll, then read), write 1 to the acknowledge register (bar + ack). The time of round trip i goes to ns[i].
// Returns the sum of the interrupt counts read, or -errno.
int64_t vb_msi_roundtrip_loop(volatile uint8_t *bar, size_t raise, size_t ack, int irq, size_t count, int64_t *ns)
{
    int64_t total = 0;
    struct pollfd pfd = { .fd = irq, .events = POLLIN };
    for (size_t i = 0; i < count; i++) {
        int64_t start = vb_now_ns();
        uint64_t value;
        *(volatile uint32_t *)(bar + raise) = 1;
        int rc = vb_wait(&pfd, &value);
        if (rc < 0)
            return rc;
        *(volatile uint32_t *)(bar + ack) = 1;
        ns[i] = vb_now_ns() - start;
        total += (int64_t)value;
    }
    return total;
}
