/*
 * dashboard_assets.c — the dashboard's page, script and style, compiled
 * into the binary with the assembler's .incbin (no file is read at run
 * time). The Makefile makes this object depend on src/api/dashboard/.
 */
#include "api/dashboard.h"

#define DASH_INCBIN(name, file)                                                                    \
    __asm__(".section .rodata\n"                                                                   \
            ".global " #name "_start\n"                                                            \
            ".hidden " #name "_start\n" #name "_start:\n"                                          \
            ".incbin \"" file "\"\n"                                                               \
            ".global " #name "_end\n"                                                              \
            ".hidden " #name "_end\n" #name "_end:\n"                                              \
            ".previous\n");                                                                        \
    extern const char name##_start[];                                                              \
    extern const char name##_end[]

DASH_INCBIN(dash_html, "src/api/dashboard/index.html");
DASH_INCBIN(dash_js, "src/api/dashboard/dashboard.js");
DASH_INCBIN(dash_css, "src/api/dashboard/dashboard.css");
DASH_INCBIN(dash_parts, "src/api/dashboard/rtm-parts.js");

const struct dash_asset dash_assets[] = {
    {"", "text/html;charset=utf-8", dash_html_start, dash_html_end},
    {"dashboard.js", "text/javascript;charset=utf-8", dash_js_start, dash_js_end},
    {"dashboard.css", "text/css;charset=utf-8", dash_css_start, dash_css_end},
    {"rtm-parts.js", "text/javascript;charset=utf-8", dash_parts_start, dash_parts_end},
};
const size_t dash_n_assets = sizeof(dash_assets) / sizeof(dash_assets[0]);
