#include <stdio.h>

int main(void)
{
    puts("rtmd " RTMD_VERSION);
    return 0;
}
