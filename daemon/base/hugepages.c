/* hugepages: the hugetlb pool as /proc/meminfo says (see hugepages.h). */
#include "hugepages.h"

#include <stdio.h>

bool hugepages_pool(uint64_t *page_size, uint64_t *free_bytes)
{
    FILE *f = fopen("/proc/meminfo", "re");
    unsigned long long v, size_kib = 0, free_pages = 0;
    char line[128];

    if (!f)
        return false;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "HugePages_Free: %llu", &v) == 1)
            free_pages = v;
        else if (sscanf(line, "Hugepagesize: %llu kB", &v) == 1)
            size_kib = v;
    }
    fclose(f);
    if (size_kib == 0)
        return false;
    *page_size = (uint64_t)size_kib * 1024;
    *free_bytes = (uint64_t)free_pages * *page_size;
    return true;
}
