// SPDX-License-Identifier: MIT
// The kernel side of goal N1 (bench/Vfio.Benchmarks/NvmeGoals.cs): 4 KiB random reads of a block device with O_DIRECT
// through Linux AIO (io_setup/io_submit/io_getevents as raw system calls: no libaio), QD requests kept in flight, for
// SECONDS seconds. Offsets come from the same xorshift sequence as the library's side. Built statically on the host by
// bench.sh and run in the testbed guest on /dev/nvme0n1 after the nvme driver took the device back.
//   nvmeread DEVICE QD SECONDS   prints "ios=N seconds=S iops=I"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096
#define MAX_QD 256

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

// The library's side uses the same generator: x ^= x << 13; x ^= x >> 7; x ^= x << 17.
static uint64_t next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: nvmeread DEVICE QD SECONDS\n");
        return 2;
    }
    int qd = atoi(argv[2]);
    double seconds = atof(argv[3]);
    if (qd < 1 || qd > MAX_QD || seconds <= 0) {
        fprintf(stderr, "nvmeread: QD must be 1 to %d and SECONDS above 0\n", MAX_QD);
        return 2;
    }
    int fd = open(argv[1], O_RDONLY | O_DIRECT);
    if (fd < 0) {
        fprintf(stderr, "nvmeread: open %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    off_t size = lseek(fd, 0, SEEK_END);   // a block device's size, as BLKGETSIZE64 (and a file's, for a try on the host)
    uint64_t bytes = size > 0 ? (uint64_t)size : 0;
    if (bytes < BLOCK) {
        fprintf(stderr, "nvmeread: %s: no size (%s)\n", argv[1], strerror(errno));
        return 1;
    }
    uint64_t pages = bytes / BLOCK;
    char *buffers;
    if (posix_memalign((void **)&buffers, BLOCK, (size_t)qd * BLOCK) != 0) {
        fprintf(stderr, "nvmeread: no memory\n");
        return 1;
    }
    aio_context_t ctx = 0;
    if (syscall(SYS_io_setup, qd, &ctx) != 0) {
        fprintf(stderr, "nvmeread: io_setup: %s\n", strerror(errno));
        return 1;
    }
    static struct iocb iocbs[MAX_QD];
    static struct iocb *submit[MAX_QD];
    static struct io_event events[MAX_QD];
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < qd; i++) {
        memset(&iocbs[i], 0, sizeof iocbs[i]);
        iocbs[i].aio_fildes = (uint32_t)fd;
        iocbs[i].aio_lio_opcode = IOCB_CMD_PREAD;
        iocbs[i].aio_buf = (uint64_t)(uintptr_t)(buffers + (size_t)i * BLOCK);
        iocbs[i].aio_nbytes = BLOCK;
        iocbs[i].aio_offset = (int64_t)((next(&x) % pages) * BLOCK);
        iocbs[i].aio_data = (uint64_t)i;
        submit[i] = &iocbs[i];
    }
    double start = now(), end = start + seconds;
    if (syscall(SYS_io_submit, ctx, qd, submit) != qd) {
        fprintf(stderr, "nvmeread: io_submit: %s\n", strerror(errno));
        return 1;
    }
    long ios = 0, inflight = qd;
    int stopping = 0;
    while (inflight > 0) {
        long got = syscall(SYS_io_getevents, ctx, 1, qd, events, NULL);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "nvmeread: io_getevents: %s\n", strerror(errno));
            return 1;
        }
        inflight -= got;
        int again = 0;
        for (long i = 0; i < got; i++) {
            if (events[i].res != BLOCK) {
                fprintf(stderr, "nvmeread: a read returned %lld\n", (long long)events[i].res);
                return 1;
            }
            ios++;
            if (!stopping) {
                struct iocb *cb = &iocbs[events[i].data];
                cb->aio_offset = (int64_t)((next(&x) % pages) * BLOCK);
                submit[again++] = cb;
            }
        }
        if (!stopping && now() >= end)
            stopping = 1;
        if (!stopping && again > 0) {
            if (syscall(SYS_io_submit, ctx, again, submit) != again) {
                fprintf(stderr, "nvmeread: io_submit: %s\n", strerror(errno));
                return 1;
            }
            inflight += again;
        }
    }
    double elapsed = now() - start;
    syscall(SYS_io_destroy, ctx);
    close(fd);
    free(buffers);
    printf("ios=%ld seconds=%.3f iops=%.1f\n", ios, elapsed, (double)ios / elapsed);
    return 0;
}
