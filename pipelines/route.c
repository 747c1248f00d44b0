/* route.c - stage 2: which model answers. A pinned model wins; "auto" resolves through
 * models.default, and without a router (a later stage) "auto" means the strong model: the
 * pass-through never trades quality for cost on its own. */
#include <string.h>

#include "host/util.h"
#include "pipelines/pipeline.h"

void sc_stage_route(sc_batch_t *batch, const sc_config_t *cfg)
{
    const char *def = sc_config_str(cfg, "models.default");
    if (strcmp(def, "auto") == 0)
        def = sc_config_str(cfg, "models.strong");
    for (size_t i = 0; i < batch->n; i++) {
        sc_item_t *it = batch->items[i];
        if (it->state != SC_ITEM_FORWARD)
            continue;
        if (strcmp(it->req->model, "auto") != 0) {
            sc_strlcpy(it->model, it->req->model, sizeof it->model);
            it->route = "pinned";
        } else {
            sc_strlcpy(it->model, def, sizeof it->model);
            it->route = "default";
        }
    }
}
