/* assets.h (private to src/web): the UI files embedded at build time by
 * embed.py, from src/web/ui. */
#ifndef LAMA_WEB_ASSETS_H
#define LAMA_WEB_ASSETS_H

#include <stddef.h>

struct lama_web_asset {
	const char *path; /* "/" for index.html, else "/NAME" */
	const char *type; /* Content-Type */
	const unsigned char *data;
	size_t len;
};

/* Ends with an entry whose path is NULL. */
extern const struct lama_web_asset lama_web_assets[];

#endif
