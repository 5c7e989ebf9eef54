#include <stdio.h>
int main(void) { puts("lama"); return 0; }
