/*
 * test_huge: huge pages and touch hints of mmapio_options.
 *
 * huge_pages is best effort: an anonymous mapping asked for it opens
 * whatever the system has (the hugetlb pool, transparent huge pages for
 * shmem, or neither), and mmapio_is_hugepage_backed says what the kernel
 * did, consistently with /proc/meminfo and the shmem THP setting. As
 * root, a few hugetlb pages are reserved (and the old count restored) to
 * see the daemon really use MFD_HUGETLB; mmapioctl ls shows per mapping
 * what was done (HUGE column, "huge_pages" in --json).
 *
 * touch: EAGER faults every page in before mmapio_open returns (mincore
 * says all are resident), where NEVER leaves a fresh memfd without any.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

TestSuite(huge, .init = hz_setup, .fini = hz_teardown, .timeout = 60);

#define MIB (1024ULL * 1024)

/* A /proc/meminfo value ("HugePages_Free", "Hugepagesize"), or 0. */
static unsigned long long meminfo(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "re");
    char line[128];
    unsigned long long v = 0;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, key, n) == 0 && line[n] == ':')
            v = strtoull(line + n + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

/* Transparent huge pages may back shmem (shmem_enabled not never/deny). */
static bool shmem_thp_possible(void)
{
    char buf[256] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "re");
    if (!f)
        return false;
    bool ok = fgets(buf, sizeof(buf), f) && !strstr(buf, "[never]") &&
              !strstr(buf, "[deny]");
    fclose(f);
    return ok;
}

static mmapio_client *conn(void)
{
    mmapio_client *c;
    cr_assert_eq(mmapio_connect(hz.sock, &c), MMAPIO_OK, "%s",
                 mmapio_last_error());
    return c;
}

static int open_anon(mmapio_client *c, const char *name, uint64_t size,
                     bool huge, mmapio_touch_hint touch, mmapio_map **m)
{
    mmapio_options o;
    mmapio_options_init(&o);
    o.anonymous = true;
    o.create = true;
    o.size = size;
    o.huge_pages = huge;
    o.touch = touch;
    return mmapio_open(c, name, &o, m);
}

/* Writes and reads back every page, so that huge pages, if any, exist. */
static void fill(mmapio_map *m, int byte)
{
    uint8_t *p = mmapio_as_mut_ptr(m);
    cr_assert_not_null(p);
    memset(p, byte, mmapio_len(m));
    for (uint64_t i = 0; i < mmapio_len(m); i += 4096)
        cr_assert_eq(p[i], byte);
}

/* The mmapio_map_info.huge_pages of the mapping named name, or -1. */
static int listed_huge(mmapio_client *c, const char *name)
{
    mmapio_map_info *maps;
    size_t n;
    int found = -1;
    cr_assert_eq(mmapio_admin_list(c, &maps, &n), MMAPIO_OK);
    for (size_t i = 0; i < n; i++)
        if (strcmp(maps[i].name, name) == 0)
            found = (int)maps[i].huge_pages;
    mmapio_map_info_free(maps, n);
    return found;
}

/* The output of `mmapioctl [--json] ls` into buf. */
static void ctl_ls(bool json, char *buf, size_t cap)
{
    const char *ctl = hz_build_file("MMAPIOCTL", "../client/mmapioctl");
    cr_assert_not_null(ctl, "mmapioctl not built");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s --socket %s %s ls", ctl, hz.sock,
             json ? "--json" : "");
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(buf, 1, cap - 1, p);
    buf[n] = '\0';
    cr_assert_eq(pclose(p), 0, "mmapioctl ls failed: %s", buf);
}

/* The ls line (text) that names name, copied into line. */
static bool ls_line(const char *out, const char *name, char *line, size_t cap)
{
    const char *at = strstr(out, name);
    if (!at)
        return false;
    const char *start = at, *end = strchr(at, '\n');
    while (start > out && start[-1] != '\n')
        start--;
    size_t n = (size_t)((end ? end : at + strlen(at)) - start);
    n = n < cap - 1 ? n : cap - 1;
    memcpy(line, start, n);
    line[n] = '\0';
    return true;
}

Test(huge, anonymous_never_fails_and_reports_what_the_kernel_did)
{
    mmapio_client *c = conn();
    static const uint64_t sizes[] = { 4096, 3 * MIB, 2 * MIB, 8 * MIB };
    bool thp = shmem_thp_possible();
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char name[32];
        mmapio_map *m;
        snprintf(name, sizeof(name), "huge%zu", i);
        unsigned long long pool = meminfo("HugePages_Free") *
                                  meminfo("Hugepagesize") * 1024;
        cr_assert_eq(open_anon(c, name, sizes[i], true, MMAPIO_TOUCH_NEVER, &m),
                     MMAPIO_OK, "huge_pages must never fail (%llu bytes): %s",
                     (unsigned long long)sizes[i], mmapio_last_error());
        cr_assert_eq(mmapio_len(m), sizes[i], "the size asked stays the size");
        fill(m, 0x5a + (int)i);
        int hb = mmapio_is_hugepage_backed(m);
        cr_assert(hb == 0 || hb == 1, "is_hugepage_backed: %d", hb);
        if (pool == 0 && !thp)
            cr_assert_eq(hb, 0, "no hugetlb pool, no shmem THP, yet backed "
                         "by huge pages (%s)", name);
        if (sizes[i] < 2 * MIB)
            cr_assert_eq(hb, 0, "%s: %llu bytes cannot hold a huge page",
                         name, (unsigned long long)sizes[i]);
        int listed = listed_huge(c, name);
        cr_assert(listed == MMAPIO_HUGE_TRANSPARENT ||
                  listed == MMAPIO_HUGE_HUGETLB, "%s listed as %d", name,
                  listed);
        if (listed == MMAPIO_HUGE_HUGETLB)
            cr_assert_eq(hb, 1, "%s: hugetlb but smaps says no", name);
        cr_assert_eq(mmapio_unmap(m), MMAPIO_OK);
        cr_assert_eq(mmapio_anon_delete(c, name), MMAPIO_OK);
    }
    mmapio_disconnect(c);
}

Test(huge, not_asked_is_not_backed_and_listed_as_no)
{
    mmapio_client *c = conn();
    mmapio_map *m;
    cr_assert_eq(open_anon(c, "plain", 4 * MIB, false, MMAPIO_TOUCH_NEVER, &m),
                 MMAPIO_OK);
    fill(m, 1);
    if (!shmem_thp_possible())
        cr_assert_eq(mmapio_is_hugepage_backed(m), 0);
    cr_assert_eq(listed_huge(c, "plain"), MMAPIO_HUGE_NONE);
    cr_assert_eq(mmapio_is_hugepage_backed(NULL), MMAPIO_E_INVALID_ARGUMENT);
    char out[8192], line[1024];
    ctl_ls(false, out, sizeof(out));
    cr_assert(strstr(out, "HUGE"), "ls has no HUGE column:\n%s", out);
    cr_assert(ls_line(out, "anon:plain", line, sizeof(line)), "%s", out);
    cr_assert(strstr(line, " no"), "ls line: %s", line);
    ctl_ls(true, out, sizeof(out));
    cr_assert(strstr(out, "\"huge_pages\": \"no\""), "%s", out);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(huge, file_asked_for_huge_pages_opens)
{
    mmapio_client *c = conn();
    mmapio_options o;
    mmapio_map *m;
    mmapio_options_init(&o);
    o.create = true;
    o.size = 4 * MIB;
    o.huge_pages = true;
    cr_assert_eq(mmapio_open(c, "big.bin", &o, &m), MMAPIO_OK, "%s",
                 mmapio_last_error());
    fill(m, 7);
    int hb = mmapio_is_hugepage_backed(m);
    cr_assert(hb == 0 || hb == 1, "%d", hb);
    cr_assert_eq(listed_huge(c, "big.bin"), MMAPIO_HUGE_TRANSPARENT);
    char out[8192], line[1024];
    ctl_ls(false, out, sizeof(out));
    cr_assert(ls_line(out, "big.bin", line, sizeof(line)), "%s", out);
    cr_assert(strstr(line, " thp"), "ls line: %s", line);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

/* Writes n to /proc/sys/vm/nr_hugepages: true when it could. */
static bool set_nr_hugepages(unsigned long long n)
{
    FILE *f = fopen("/proc/sys/vm/nr_hugepages", "we");
    if (!f)
        return false;
    bool ok = fprintf(f, "%llu\n", n) > 0;
    return fclose(f) == 0 && ok;
}

Test(huge, hugetlb_pool_is_used_when_it_has_pages)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to reserve hugetlb pages");
    unsigned long long total = meminfo("HugePages_Total");
    unsigned long long page = meminfo("Hugepagesize") * 1024;
    if (page == 0)
        cr_skip_test("no hugetlb support");
    if (!set_nr_hugepages(total + 4) || meminfo("HugePages_Free") < 2) {
        set_nr_hugepages(total);
        cr_skip_test("the kernel would not reserve hugetlb pages");
    }
    mmapio_client *c = conn();
    mmapio_map *m;
    int r = open_anon(c, "tlb", 2 * page, true, MMAPIO_TOUCH_EAGER, &m);
    int hb = r == MMAPIO_OK ? mmapio_is_hugepage_backed(m) : -1;
    int listed = r == MMAPIO_OK ? listed_huge(c, "tlb") : -1;
    char out[8192] = "", line[1024] = "";
    int ro_ok = -1;
    if (r == MMAPIO_OK) {
        fill(m, 0x33);
        mmapio_options o;
        mmapio_map *ro;
        mmapio_options_init(&o);
        o.anonymous = true;
        o.mode = MMAPIO_MODE_READ_ONLY;
        uint8_t b = 0;
        ro_ok = mmapio_open(c, "tlb", &o, &ro) == MMAPIO_OK &&
                mmapio_read_into(ro, page + 5, &b, 1) == MMAPIO_OK &&
                b == 0x33 && mmapio_unmap(ro) == MMAPIO_OK;
        ctl_ls(false, out, sizeof(out));
        ls_line(out, "anon:tlb", line, sizeof(line));
        mmapio_unmap(m);
        mmapio_anon_delete(c, "tlb");
    }
    mmapio_disconnect(c);
    set_nr_hugepages(total);
    cr_assert_eq(r, MMAPIO_OK, "%s", mmapio_last_error());
    cr_assert_eq(listed, MMAPIO_HUGE_HUGETLB, "listed as %d", listed);
    cr_assert_eq(hb, 1, "smaps does not show huge pages");
    cr_assert(strstr(line, " hugetlb"), "ls line: %s\n%s", line, out);
    cr_assert_eq(ro_ok, 1, "a read-only holder of a hugetlb mapping");
}

/* Pages of m resident in memory, by mincore. */
static size_t resident(mmapio_map *m)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t n = (size_t)((mmapio_len(m) + page - 1) / page), in = 0;
    unsigned char *vec = calloc(n, 1);
    cr_assert_not_null(vec);
    cr_assert_eq(mincore((void *)mmapio_as_ptr(m), (size_t)mmapio_len(m), vec), 0);
    for (size_t i = 0; i < n; i++)
        in += vec[i] & 1;
    free(vec);
    return in;
}

Test(huge, touch_eager_faults_every_page_before_open_returns)
{
    mmapio_client *c = conn();
    mmapio_map *never, *eager, *lazy;
    size_t pages = (size_t)(8 * MIB / (uint64_t)sysconf(_SC_PAGESIZE));
    cr_assert_eq(open_anon(c, "never", 8 * MIB, false, MMAPIO_TOUCH_NEVER,
                           &never), MMAPIO_OK);
    cr_assert_eq(resident(never), 0, "control: a fresh memfd has no pages");
    cr_assert_eq(open_anon(c, "eager", 8 * MIB, false, MMAPIO_TOUCH_EAGER,
                           &eager), MMAPIO_OK);
    cr_assert_eq(resident(eager), pages, "EAGER left pages out");
    cr_assert_eq(open_anon(c, "lazy", 8 * MIB, false, MMAPIO_TOUCH_LAZY,
                           &lazy), MMAPIO_OK);
    mmapio_options o;
    mmapio_map *bad;
    mmapio_options_init(&o);
    o.touch = (mmapio_touch_hint)42;
    cr_assert_eq(mmapio_open(c, "never", &o, &bad), MMAPIO_E_INVALID_ARGUMENT);
    mmapio_unmap(never);
    mmapio_unmap(eager);
    mmapio_unmap(lazy);
    mmapio_disconnect(c);
}

Test(huge, touch_eager_reads_a_file_in)
{
    static char data[1 << 20];
    memset(data, 'x', sizeof(data));
    const char *path = hz_path(&hz, "cold.bin");
    cr_assert_eq(hz_write_file(path, data, sizeof(data)), 0);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    mmapio_client *c = conn();
    mmapio_options o;
    mmapio_map *m;
    mmapio_options_init(&o);
    o.mode = MMAPIO_MODE_READ_ONLY;
    o.touch = MMAPIO_TOUCH_EAGER;
    cr_assert_eq(mmapio_open(c, "cold.bin", &o, &m), MMAPIO_OK);
    size_t pages = sizeof(data) / (size_t)sysconf(_SC_PAGESIZE);
    cr_assert_eq(resident(m), pages, "EAGER left file pages out");
    mmapio_unmap(m);
    mmapio_disconnect(c);
}
