/* hugepages: the hugetlb pool as the kernel says (see hugepages.h). */
#include "hugepages.h"

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "membackend.h"

/* /proc/meminfo: the default size and its free pages. */
static bool pool_from_meminfo(uint64_t *page_size, uint64_t *free_pages)
{
    FILE *f = fopen("/proc/meminfo", "re");
    unsigned long long v, size_kib = 0, free_n = 0;
    char line[128];

    if (!f)
        return false;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "HugePages_Free: %llu", &v) == 1)
            free_n = v;
        else if (sscanf(line, "Hugepagesize: %llu kB", &v) == 1)
            size_kib = v;
    }
    fclose(f);
    *page_size = (uint64_t)size_kib * 1024;
    *free_pages = free_n;
    return size_kib > 0;
}

/* Without /proc/meminfo (the service's ProcSubset=pid hides it): the
 * default size is the block size of a hugetlb memfd (made empty, so it
 * takes no page), its free pages are in sysfs. */
static bool pool_from_sysfs(uint64_t *page_size, uint64_t *free_pages)
{
    struct stat st;
    char path[128];
    unsigned long long n;
    int fd = mem_section_new("mmapiod-hugepage-size", 0, MEM_HUGETLB);
    if (fd < 0)
        return false;
    int r = fstat(fd, &st);
    close(fd);
    if (r < 0 || st.st_blksize < 4096)
        return false;
    snprintf(path, sizeof(path),
             "/sys/kernel/mm/hugepages/hugepages-%llukB/free_hugepages",
             (unsigned long long)st.st_blksize / 1024);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    r = fscanf(f, "%llu", &n);
    fclose(f);
    if (r != 1)
        return false;
    *page_size = (uint64_t)st.st_blksize;
    *free_pages = n;
    return true;
}

bool hugepages_pool(uint64_t *page_size, uint64_t *free_bytes)
{
    uint64_t size, n;
    if (!pool_from_meminfo(&size, &n) && !pool_from_sysfs(&size, &n))
        return false;
    *page_size = size;
    *free_bytes = n * size;
    return true;
}
