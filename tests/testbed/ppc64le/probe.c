// SPDX-License-Identifier: MIT
// The sPAPR TCE probe: the /init of the ppc64le (pseries) guest. It binds every PCI endpoint to vfio-pci, then asks the
// kernel's sPAPR TCE container every question the simulator's model answers (extensions, GET_INFO, v1 ENABLE and its
// window, v2 pre-registration, window create/remove over page sizes and levels, map/unmap, the group rules, EEH) and
// prints each answer as "probe: <what> = <rc> [errno NAME] <details>". It powers the guest off at the end.
// Built statically by prepare.sh (powerpc64le-linux-gnu-gcc -static); the uAPI comes from the cross libc's headers
// only where they agree with 6.12, so the few sPAPR definitions are spelled out here.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

#define VFIO_TYPE ';'
#define VFIO_BASE 100
#define VIO(n) _IO(VFIO_TYPE, VFIO_BASE + (n))
#define VFIO_GET_API_VERSION VIO(0)
#define VFIO_CHECK_EXTENSION VIO(1)
#define VFIO_SET_IOMMU VIO(2)
#define VFIO_GROUP_GET_STATUS VIO(3)
#define VFIO_GROUP_SET_CONTAINER VIO(4)
#define VFIO_GROUP_UNSET_CONTAINER VIO(5)
#define VFIO_GROUP_GET_DEVICE_FD VIO(6)
#define VFIO_IOMMU_SPAPR_TCE_GET_INFO VIO(12)
#define VFIO_IOMMU_MAP_DMA VIO(13)
#define VFIO_IOMMU_UNMAP_DMA VIO(14)
#define VFIO_IOMMU_ENABLE VIO(15)
#define VFIO_IOMMU_DISABLE VIO(16)
#define VFIO_IOMMU_SPAPR_REGISTER_MEMORY VIO(17)
#define VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY VIO(18)
#define VFIO_IOMMU_SPAPR_TCE_CREATE VIO(19)
#define VFIO_IOMMU_SPAPR_TCE_REMOVE VIO(20)
#define VFIO_EEH_PE_OP VIO(21)

struct tce_info { uint32_t argsz, flags, dma32_window_start, dma32_window_size; uint64_t pgsizes; uint32_t max_windows, levels; };
struct dma_map { uint32_t argsz, flags; uint64_t vaddr, iova, size; };
struct dma_unmap { uint32_t argsz, flags; uint64_t iova, size; };
struct reg_mem { uint32_t argsz, flags; uint64_t vaddr, size; };
struct tce_create { uint32_t argsz, flags, page_shift, resv1; uint64_t window_size; uint32_t levels, resv2; uint64_t start_addr; };
struct tce_remove { uint32_t argsz, flags; uint64_t start_addr; };
struct eeh_op { uint32_t argsz, flags, op, resv; uint32_t type, func; uint64_t addr, mask; };
struct group_status { uint32_t argsz, flags; };

_Static_assert(sizeof(struct tce_info) == 32, "tce_info");
_Static_assert(sizeof(struct tce_create) == 40, "tce_create");
_Static_assert(sizeof(struct eeh_op) == 40, "eeh_op");

static const char *errname(int e)
{
    switch (e) {
    case 0: return "0";
    case EPERM: return "EPERM"; case ENOENT: return "ENOENT"; case EIO: return "EIO"; case ENXIO: return "ENXIO";
    case E2BIG: return "E2BIG"; case EBADF: return "EBADF"; case ENOMEM: return "ENOMEM"; case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY"; case EEXIST: return "EEXIST"; case ENODEV: return "ENODEV"; case EINVAL: return "EINVAL";
    case ENOSPC: return "ENOSPC"; case ENOTTY: return "ENOTTY"; case ERANGE: return "ERANGE"; case ENOSYS: return "ENOSYS";
    case EOPNOTSUPP: return "EOPNOTSUPP"; case EACCES: return "EACCES";
    default: { static char other[16]; snprintf(other, sizeof other, "errno %d", e); return other; }
    }
}

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("probe: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    va_end(ap);
}

// Runs an ioctl and prints "what = rc errno".
static int io(const char *what, int fd, unsigned long req, void *arg)
{
    errno = 0;
    int rc = ioctl(fd, req, arg);
    int e = rc < 0 ? errno : 0;
    say("%s = %d %s", what, rc, rc < 0 ? errname(e) : "");
    return rc < 0 ? -e : rc;
}

static int ion(const char *what, int fd, unsigned long req, unsigned long arg)
{
    errno = 0;
    int rc = ioctl(fd, req, arg);
    int e = rc < 0 ? errno : 0;
    say("%s = %d %s", what, rc, rc < 0 ? errname(e) : "");
    return rc < 0 ? -e : rc;
}

static void put(const char *path, const char *value)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0) { say("write %s: open %s", path, errname(errno)); return; }
    ssize_t n = write(fd, value, strlen(value));
    say("write %s <- %s: %s", path, value, n < 0 ? errname(errno) : "ok");
    close(fd);
}

static void cat(const char *path)
{
    char buf[4096];
    int fd = open(path, O_RDONLY);
    if (fd < 0) { say("cat %s: %s", path, errname(errno)); return; }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) n = 0;
    buf[n] = 0;
    while (n > 0 && buf[n - 1] == '\n') buf[--n] = 0;
    say("cat %s: %s", path, buf);
}

static char groups[8][64];
static int ngroups;

static void bind_all(void)
{
    DIR *d = opendir("/sys/bus/pci/devices");
    if (!d) { say("no /sys/bus/pci/devices: %s", errname(errno)); return; }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[320], cls[32] = "", link[256];
        snprintf(p, sizeof p, "/sys/bus/pci/devices/%s/class", e->d_name);
        int fd = open(p, O_RDONLY);
        if (fd >= 0) { ssize_t n = read(fd, cls, sizeof cls - 1); cls[n > 0 ? n : 0] = 0; close(fd); }
        say("pci %s class %.8s", e->d_name, cls);
        if (strncmp(cls, "0x0604", 6) == 0) continue;
        snprintf(p, sizeof p, "/sys/bus/pci/devices/%s/driver_override", e->d_name);
        put(p, "vfio-pci");
        put("/sys/bus/pci/drivers_probe", e->d_name);
        snprintf(p, sizeof p, "/sys/bus/pci/devices/%s/iommu_group", e->d_name);
        ssize_t n = readlink(p, link, sizeof link - 1);
        if (n < 0) { say("pci %s: no iommu_group (%s)", e->d_name, errname(errno)); continue; }
        link[n] = 0;
        const char *g = strrchr(link, '/') + 1;
        say("pci %s iommu_group %s", e->d_name, g);
        int dup = 0;
        for (int i = 0; i < ngroups; i++) dup |= strcmp(groups[i], g) == 0;
        if (!dup && ngroups < 8) snprintf(groups[ngroups++], 64, "%s", g);
    }
    closedir(d);
}

static int open_group(int i)
{
    char p[96];
    snprintf(p, sizeof p, "/dev/vfio/%s", groups[i]);
    int fd = open(p, O_RDWR);
    say("open %s = %d %s", p, fd, fd < 0 ? errname(errno) : "");
    if (fd >= 0) {
        struct group_status st = { sizeof st, 0 };
        io("GROUP_GET_STATUS", fd, VFIO_GROUP_GET_STATUS, &st);
        say("group %s flags 0x%x", groups[i], st.flags);
    }
    return fd;
}

static int set_container(int group, int container)
{
    return io("GROUP_SET_CONTAINER", group, VFIO_GROUP_SET_CONTAINER, &container);
}

static int map(int c, const char *what, void *va, uint64_t iova, uint64_t size, uint32_t flags)
{
    struct dma_map m = { sizeof m, flags, (uint64_t)(uintptr_t)va, iova, size };
    char w[160];
    snprintf(w, sizeof w, "MAP_DMA %s iova 0x%llx size 0x%llx", what, (unsigned long long)iova, (unsigned long long)size);
    return io(w, c, VFIO_IOMMU_MAP_DMA, &m);
}

static int unmap(int c, const char *what, uint64_t iova, uint64_t size)
{
    struct dma_unmap u = { sizeof u, 0, iova, size };
    char w[160];
    snprintf(w, sizeof w, "UNMAP_DMA %s iova 0x%llx size 0x%llx", what, (unsigned long long)iova, (unsigned long long)size);
    int rc = io(w, c, VFIO_IOMMU_UNMAP_DMA, &u);
    say("  unmapped size 0x%llx", (unsigned long long)u.size);
    return rc;
}

static int reg(int c, unsigned long req, const char *what, void *va, uint64_t size)
{
    struct reg_mem r = { sizeof r, 0, (uint64_t)(uintptr_t)va, size };
    return io(what, c, req, &r);
}

static int create(int c, uint32_t shift, uint64_t size, uint32_t levels, uint64_t *start)
{
    struct tce_create cr = { sizeof cr, 0, shift, 0, size, levels, 0, 0xdeadull };
    char w[160];
    snprintf(w, sizeof w, "TCE_CREATE page_shift %u window 0x%llx levels %u", shift, (unsigned long long)size, levels);
    int rc = io(w, c, VFIO_IOMMU_SPAPR_TCE_CREATE, &cr);
    if (rc == 0) say("  start_addr 0x%llx", (unsigned long long)cr.start_addr);
    *start = cr.start_addr;
    return rc;
}

static int remove_window(int c, uint64_t start)
{
    struct tce_remove r = { sizeof r, 0, start };
    char w[96];
    snprintf(w, sizeof w, "TCE_REMOVE start 0x%llx", (unsigned long long)start);
    return io(w, c, VFIO_IOMMU_SPAPR_TCE_REMOVE, &r);
}

static struct tce_info info(int c, uint32_t argsz)
{
    struct tce_info i;
    memset(&i, 0xab, sizeof i);
    i.argsz = argsz;
    char w[64];
    snprintf(w, sizeof w, "SPAPR_TCE_GET_INFO argsz %u", argsz);
    io(w, c, VFIO_IOMMU_SPAPR_TCE_GET_INFO, &i);
    say("  flags 0x%x dma32 0x%x+0x%x pgsizes 0x%llx max_windows %u levels %u", i.flags, i.dma32_window_start,
        i.dma32_window_size, (unsigned long long)i.pgsizes, i.max_windows, i.levels);
    return i;
}

static void eeh(int c, const char *what, uint32_t op, uint32_t argsz, uint32_t func)
{
    struct eeh_op e = { argsz, 0, op, 0, 0, func, 0, 0 };
    io(what, c, VFIO_EEH_PE_OP, &e);
}

static int new_container(void)
{
    int c = open("/dev/vfio/vfio", O_RDWR);
    say("open /dev/vfio/vfio = %d %s", c, c < 0 ? errname(errno) : "");
    return c;
}

static void probe_v1(void *buf, size_t len)
{
    say("==== v1 (VFIO_SPAPR_TCE_IOMMU)");
    int c = new_container();
    int g = open_group(0);
    if (c < 0 || g < 0) return;
    ion("SET_IOMMU v1 before a group", c, VFIO_SET_IOMMU, 2);
    set_container(g, c);
    ion("SET_IOMMU v1", c, VFIO_SET_IOMMU, 2);
    struct tce_info i = info(c, 16);
    i = info(c, 32);
    map(c, "before ENABLE", buf, i.dma32_window_start, 0x10000, 3);
    ion("ENABLE", c, VFIO_IOMMU_ENABLE, 0);
    ion("ENABLE again", c, VFIO_IOMMU_ENABLE, 0);
    map(c, "4K", buf, i.dma32_window_start, 0x1000, 3);
    map(c, "64K", buf, i.dma32_window_start + 0x10000, 0x10000, 3);
    map(c, "no direction", buf, i.dma32_window_start + 0x20000, 0x1000, 0);
    map(c, "misaligned vaddr", (char *)buf + 0x800, i.dma32_window_start + 0x20000, 0x1000, 3);
    map(c, "past window end", buf, (uint64_t)i.dma32_window_start + i.dma32_window_size - 0x1000, 0x2000, 3);
    map(c, "outside window", buf, (uint64_t)i.dma32_window_start + i.dma32_window_size, 0x1000, 3);
    map(c, "over an existing entry", buf, i.dma32_window_start, 0x1000, 3);
    unmap(c, "4K", i.dma32_window_start, 0x1000);
    unmap(c, "64K", i.dma32_window_start + 0x10000, 0x10000);
    unmap(c, "nothing mapped", i.dma32_window_start + 0x40000, 0x1000);
    unmap(c, "outside window", (uint64_t)i.dma32_window_start + i.dma32_window_size, 0x1000);
    reg(c, VFIO_IOMMU_SPAPR_REGISTER_MEMORY, "REGISTER_MEMORY on v1", buf, len);
    ion("CHECK_EXTENSION EEH", c, VFIO_CHECK_EXTENSION, 5);
    eeh(c, "EEH PE_ENABLE", 1, 12, 0);
    eeh(c, "EEH PE_GET_STATE", 5, 12, 0);
    eeh(c, "EEH PE_CONFIGURE", 9, 12, 0);
    eeh(c, "EEH bad op 42", 42, 12, 0);
    eeh(c, "EEH short argsz", 5, 8, 0);
    if (ngroups > 1) {
        int g2 = open_group(1);
        if (g2 >= 0) {
            set_container(g2, c);
            close(g2);
        }
    }
    ion("DISABLE", c, VFIO_IOMMU_DISABLE, 0);
    ion("GROUP_UNSET_CONTAINER", g, VFIO_GROUP_UNSET_CONTAINER, 0);
    close(g);
    close(c);
}

static void probe_v2(void *buf, size_t len, struct tce_info *out)
{
    say("==== v2 (VFIO_SPAPR_TCE_v2_IOMMU)");
    int c = new_container();
    int g = open_group(0);
    if (c < 0 || g < 0) return;
    set_container(g, c);
    ion("SET_IOMMU v2", c, VFIO_SET_IOMMU, 7);
    struct tce_info i = info(c, 32);
    *out = i;
    ion("ENABLE on v2", c, VFIO_IOMMU_ENABLE, 0);
    map(c, "before REGISTER", buf, i.dma32_window_start, 0x10000, 3);
    reg(c, VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY, "UNREGISTER before REGISTER", buf, len);
    reg(c, VFIO_IOMMU_SPAPR_REGISTER_MEMORY, "REGISTER_MEMORY misaligned 4K", (char *)buf + 0x1000, 0x1000);
    reg(c, VFIO_IOMMU_SPAPR_REGISTER_MEMORY, "REGISTER_MEMORY size 0", buf, 0);
    reg(c, VFIO_IOMMU_SPAPR_REGISTER_MEMORY, "REGISTER_MEMORY first half", buf, len / 2);
    reg(c, VFIO_IOMMU_SPAPR_REGISTER_MEMORY, "REGISTER_MEMORY first half again", buf, len / 2);
    reg(c, VFIO_IOMMU_SPAPR_REGISTER_MEMORY, "REGISTER_MEMORY overlapping", buf, len);
    map(c, "registered, default window", buf, i.dma32_window_start, 0x10000, 3);
    map(c, "unregistered half", (char *)buf + len / 2, i.dma32_window_start + 0x10000, 0x10000, 3);
    unmap(c, "registered", i.dma32_window_start, 0x10000);
    remove_window(c, i.dma32_window_start);
    remove_window(c, i.dma32_window_start);
    map(c, "after default window removed", buf, i.dma32_window_start, 0x10000, 3);
    static const uint32_t shifts[] = { 12, 16, 21, 24, 30 };
    static const uint64_t sizes[] = { 1ull << 28, 1ull << 31, 1ull << 32, 1ull << 40, 3ull << 28 };
    for (unsigned s = 0; s < sizeof shifts / sizeof *shifts; s++) {
        for (unsigned z = 0; z < sizeof sizes / sizeof *sizes; z++) {
            /* TCG clears a table of 2^28 entries for minutes: windows of more than 2^20 TCEs are skipped. */
            if ((sizes[z] >> shifts[s]) > (1ull << 20)) {
                say("TCE_CREATE page_shift %u window 0x%llx: skipped (%llu TCEs)", shifts[s],
                    (unsigned long long)sizes[z], (unsigned long long)(sizes[z] >> shifts[s]));
                continue;
            }
            for (uint32_t l = 0; l <= 2 && l <= i.levels + 1; l++) {
                uint64_t start;
                if (create(c, shifts[s], sizes[z], l, &start) == 0) remove_window(c, start);
            }
        }
    }
    /* Both slots: a default-shaped window (4K pages, 1 GiB) first, then a 64K one; then the other order.
     * Before the windows in a row: a failed DDW creation marks the PE failed for the rest of the boot (ENODEV). */
    uint64_t a = 0, b = 0;
    int ra = create(c, 12, 1ull << 30, 1, &a);
    int rb = create(c, 16, 1ull << 30, 1, &b);
    if (rb == 0) remove_window(c, b);
    if (ra == 0) remove_window(c, a);
    rb = create(c, 16, 1ull << 30, 1, &b);
    ra = create(c, 12, 1ull << 28, 1, &a);
    if (ra == 0) remove_window(c, a);
    if (rb == 0) remove_window(c, b);
    uint64_t w[4] = { 0 };
    int made = 0;
    for (int k = 0; k < 3; k++) {
        if (create(c, 16, 1ull << 30, 1, &w[k]) == 0) made++;
    }
    say("windows created in a row: %d", made);
    for (int k = 0; k < made; k++) {
        map(c, "into created window", buf, w[k], 0x10000, 3);
        map(c, "into created window, 4K size in 64K window", buf, w[k] + 0x10000, 0x1000, 3);
        unmap(c, "created window", w[k], 0x10000);
    }
    for (int k = 0; k < made; k++) remove_window(c, w[k]);
    remove_window(c, 0x123450000ull);
    if (ngroups > 1) {
        int g2 = open_group(1);
        if (g2 >= 0) {
            set_container(g2, c);
            eeh(c, "EEH PE_GET_STATE with two groups", 5, 12, 0);
            ion("GROUP_UNSET_CONTAINER second", g2, VFIO_GROUP_UNSET_CONTAINER, 0);
            close(g2);
        }
    }
    reg(c, VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY, "UNREGISTER_MEMORY first half", buf, len / 2);
    reg(c, VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY, "UNREGISTER_MEMORY again", buf, len / 2);
    ion("GROUP_UNSET_CONTAINER", g, VFIO_GROUP_UNSET_CONTAINER, 0);
    close(g);
    close(c);
}

static void probe_eeh(void)
{
    say("==== EEH on a v2 container");
    int c = new_container();
    int g = open_group(0);
    if (c < 0 || g < 0) return;
    set_container(g, c);
    ion("SET_IOMMU v2", c, VFIO_SET_IOMMU, 7);
    eeh(c, "EEH PE_ENABLE", 1, 12, 0);
    eeh(c, "EEH PE_GET_STATE", 5, 12, 0);
    eeh(c, "EEH PE_UNFREEZE_IO", 2, 12, 0);
    eeh(c, "EEH PE_UNFREEZE_DMA", 3, 12, 0);
    eeh(c, "EEH PE_INJECT_ERR short argsz", 10, 12, 0);
    eeh(c, "EEH PE_INJECT_ERR func 20", 10, 40, 20);
    eeh(c, "EEH PE_INJECT_ERR func 0", 10, 40, 0);
    eeh(c, "EEH PE_GET_STATE after inject", 5, 12, 0);
    eeh(c, "EEH PE_RESET_HOT", 7, 12, 0);
    eeh(c, "EEH PE_GET_STATE in reset", 5, 12, 0);
    eeh(c, "EEH PE_RESET_DEACTIVATE", 6, 12, 0);
    eeh(c, "EEH PE_CONFIGURE", 9, 12, 0);
    eeh(c, "EEH PE_GET_STATE after reset", 5, 12, 0);
    eeh(c, "EEH PE_DISABLE", 0, 12, 0);
    ion("GROUP_UNSET_CONTAINER", g, VFIO_GROUP_UNSET_CONTAINER, 0);
    close(g);
    close(c);
}

int main(void)
{
    mkdir("/proc", 0755); mkdir("/sys", 0755); mkdir("/dev", 0755);
    mount("proc", "/proc", "proc", 0, NULL);
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    say("start: page size %ld", sysconf(_SC_PAGESIZE));
    cat("/proc/version");
    cat("/proc/cmdline");
    bind_all();
    say("groups: %d", ngroups);
    int c = new_container();
    if (c >= 0) {
        ion("GET_API_VERSION", c, VFIO_GET_API_VERSION, 0);
        static const unsigned long ext[] = { 1, 2, 3, 5, 7, 8 };
        for (unsigned k = 0; k < sizeof ext / sizeof *ext; k++) {
            char w[48];
            snprintf(w, sizeof w, "CHECK_EXTENSION %lu", ext[k]);
            ion(w, c, VFIO_CHECK_EXTENSION, ext[k]);
        }
        close(c);
    }
    if (ngroups > 0 && c >= 0) {
        size_t len = 1 << 20;
        void *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (buf == MAP_FAILED) { say("mmap failed: %s", errname(errno)); buf = NULL; }
        say("buffer at %p", buf);
        struct tce_info i2;
        memset(&i2, 0, sizeof i2);
        if (buf) {
            probe_v1(buf, len);
            probe_v2(buf, len, &i2);
            probe_eeh();
        }
    }
    say("done");
    sync();
    reboot(RB_POWER_OFF);
    return 0;
}
