/* guards_order.c - the order and polarity guards of the semantic cache: the same entities in
 * swapped order around a relation word (from, to, than, vs, before, between…and, →) and words
 * replaced by their antonym (over / under, increasing / decreased, minimize / maximise). */
#include "host/cache/guards.h"

#include <string.h>

/* ---- bounds ---- */

/* Relation words per text that the swap check looks at; a text with more is refused (one bit
 * each in a uint64_t mask). */
#define SC_GUARD_MAX_RELATIONS 64

/* ---- relation words ---- */

/* Kinds above the shared SC_GUARD_KIND_*; words of one kind are one relation ("into" is "to"). */
enum {
    KIND_AND = SC_GUARD_KIND_ARROW + 1, /* closes "between …" and is symmetric otherwise */
    KIND_CONNECTOR,                     /* or, with, plus: symmetric, for the exchange rule */
    KIND_DETERMINER,                    /* a, an, the: neutral for the exchange rule */
    KIND_TO,
    KIND_FROM,
    KIND_VS,
    KIND_THAN,
    KIND_BEFORE,
    KIND_AFTER,
    KIND_OVER,
    KIND_UNDER,
    KIND_ABOVE,
    KIND_BELOW,
    KIND_BETWEEN,
    KIND_BETWEEN_AND, /* the "and" of "between A and B": only A may stand before it */
    KIND_PER,
    KIND_BY,
};

typedef struct {
    const char *word;
    uint8_t kind;
} kind_word_t;

static const kind_word_t kind_words[] = {{"to", KIND_TO},
                                         {"into", KIND_TO},
                                         {"onto", KIND_TO},
                                         {"towards", KIND_TO},
                                         {"toward", KIND_TO},
                                         {"from", KIND_FROM},
                                         {"vs", KIND_VS},
                                         {"versus", KIND_VS},
                                         {"than", KIND_THAN},
                                         {"before", KIND_BEFORE},
                                         {"after", KIND_AFTER},
                                         {"over", KIND_OVER},
                                         {"under", KIND_UNDER},
                                         {"above", KIND_ABOVE},
                                         {"below", KIND_BELOW},
                                         {"between", KIND_BETWEEN},
                                         {"per", KIND_PER},
                                         {"by", KIND_BY},
                                         {"and", KIND_AND},
                                         {"or", KIND_CONNECTOR},
                                         {"with", KIND_CONNECTOR},
                                         {"plus", KIND_CONNECTOR},
                                         {"nor", KIND_CONNECTOR},
                                         {"both", KIND_CONNECTOR},
                                         {"either", KIND_CONNECTOR},
                                         {"a", KIND_DETERMINER},
                                         {"an", KIND_DETERMINER},
                                         {"the", KIND_DETERMINER}};

static int is_relation(uint8_t k)
{
    return k >= KIND_TO || k == SC_GUARD_KIND_ARROW;
}

uint8_t sc_guard_word_kind(const char *w, int content)
{
    for (size_t i = 0; i < sizeof kind_words / sizeof kind_words[0]; i++)
        if (strcmp(w, kind_words[i].word) == 0)
            return kind_words[i].kind;
    return content ? SC_GUARD_KIND_ENTITY : SC_GUARD_KIND_OTHER;
}

/* ---- antonyms ---- */

/* Each group: the words of one pole and of the other, space-separated; "root*" stands for the root
 * with any ending of root_endings (increas* = increase, increases, increased, increasing). A word
 * may sit in several groups (lower: high / low and upper / lower). This is a word list of
 * opposites, not of prompts. */
typedef struct {
    const char *pos, *neg;
} pole_group_t;

static const pole_group_t pole_groups[] = {
    {"over", "under"},
    {"above", "below beneath"},
    {"before prior", "after"},
    {"more", "less fewer"},
    {"most", "least fewest"},
    {"increas* grow grows grew grown growing growth rise rises rising rose risen rais* gain gains "
     "gained gaining",
     "decreas* shrink shrinks shrank shrunk shrinking fall falls fell fallen falling declin* "
     "reduc* drop drops dropped dropping lose loses losing lost loss losses"},
    {"min", "max"},
    {"minim*", "maxim*"},
    {"import*", "export*"},
    {"high* tall taller tallest", "low lows lowest lowly short shorter shortest"},
    {"upper uppercase", "lower lowercase"},
    {"raise raises raised raising", "lower lowers lowered lowering"},
    {"buy buys buying bought buyer buyers purchas*", "sell sells selling sold seller sellers"},
    {"enabl* activat* on", "disabl* deactivat* off"},
    {"encrypt*", "decrypt*"},
    {"encod*", "decod*"},
    {"compress*", "decompress* uncompress*"},
    {"serializ* serialis*", "deserializ* deserialis*"},
    {"zip zips zipped zipping", "unzip unzips unzipped unzipping"},
    {"upload*", "download*"},
    {"add adds added adding addition append* insert* creat* includ* attach*",
     "remov* delet* subtract* destroy* exclud* detach*"},
    {"ascend* asc", "descend* desc"},
    {"first firstly", "last lastly"},
    {"earl*", "late later latest lately"},
    {"inside indoor indoors inner internal internally inbound incoming input inputs ingress inward "
     "in",
     "outside outdoor outdoors outer external externally outbound outgoing output outputs egress "
     "outward out"},
    {"up upward upwards", "down downward downwards"},
    {"top", "bottom"},
    {"best better good", "worst worse bad"},
    {"cheap cheaper cheapest", "expensive pricier priciest dearer"},
    {"fast faster fastest", "slow slower slowest"},
    {"big bigger biggest large larger largest", "small smaller smallest"},
    {"long longer longest", "short shorter shortest"},
    {"heavy heavier heaviest", "lighter lightest"},
    {"old older oldest", "new newer newest"},
    {"old older oldest elder eldest", "young younger youngest"},
    {"strong stronger strongest", "weak weaker weakest"},
    {"rich richer richest", "poor poorer poorest"},
    {"hot hotter hottest warm warmer heat heats heated heating heater",
     "cold colder coldest cool cooler cooling cooled"},
    {"positive positively", "negative negatively"},
    {"pass passes passed passing succeed succeeds succeeded success successful",
     "fail fails failed failing failure failures"},
    {"win wins winning won winner winners", "lose loses losing lost loser losers"},
    {"profit profits profitable", "loss losses"},
    {"credit credits credited", "debit debits debited"},
    {"deposit*", "withdraw withdraws withdrew withdrawn withdrawing withdrawal withdrawals"},
    {"lend lends lent lending lender lenders", "borrow*"},
    {"asset assets", "liabilit*"},
    {"income revenue revenues", "expense expenses expenditure expenditures"},
    {"send sends sending sent sender", "receiv*"},
    {"push pushes pushed pushing", "pull pulls pulled pulling"},
    {"lock locks locked locking", "unlock*"},
    {"mount mounts mounted mounting", "unmount*"},
    {"install*", "uninstall*"},
    {"subscrib*", "unsubscrib*"},
    {"connect*", "disconnect*"},
    {"follow follows followed following", "unfollow*"},
    {"block blocks blocked blocking", "unblock*"},
    {"archiv*", "unarchiv*"},
    {"pin pins pinned pinning", "unpin unpins unpinned unpinning"},
    {"allow* grant grants granted granting permit permits permitted", "deny denies denied denying "
                                                                      "revok* forbid*"},
    {"allowlist whitelist", "blocklist blacklist denylist"},
    {"accept* approv*", "reject* declin* refus*"},
    {"open opens opened opening", "close closes closed closing"},
    {"start starts started starting begin begins began beginning",
     "end ends ended ending finish finishes finished finishing stop stops stopped stopping"},
    {"show shows showing shown reveal*", "hide hides hid hidden hiding"},
    {"expand*", "collaps*"},
    {"merg*", "split splits splitting"},
    {"multiply multiplies multiplied multiplying multiplication",
     "divide divides divided dividing division"},
    {"plus", "minus"},
    {"online", "offline"},
    {"public publicly", "private privately"},
    {"local locally", "remote remotely"},
    {"read reads reading", "write writes writing wrote written"},
    {"north northern", "south southern"},
    {"east eastern", "west western"},
    {"forward forwards", "backward backwards"},
    {"next following", "previous preceding"},
    {"past", "future"},
    {"yesterday", "tomorrow"},
    {"true", "false"},
    {"maximal", "minimal"},
    {"inclusive", "exclusive"},
    {"pros", "cons"},
};

/* Endings a "root*" pattern takes. */
static const char *const root_endings[] = {
    "",        "s",       "es",     "e",     "ed",    "d",    "ing",  "er",   "ers",
    "est",     "ly",      "y",      "ier",   "iest",  "ily",  "ion",  "ions", "tion",
    "tions",   "ation",   "ations", "ment",  "ments", "al",   "ally", "um",   "ums",
    "a",       "ize",     "izes",   "ized",  "izing", "ise",  "ises", "ised", "ising",
    "ization", "isation", "ity",    "ities", "ive",   "able", "ant"};

_Static_assert(2 * sizeof pole_groups / sizeof pole_groups[0] <= SC_GUARD_POLE_SLOTS,
               "SC_GUARD_POLE_SLOTS too small for the antonym groups");

static int ending_ok(const char *e)
{
    for (size_t i = 0; i < sizeof root_endings / sizeof root_endings[0]; i++)
        if (strcmp(e, root_endings[i]) == 0)
            return 1;
    return 0;
}

/* Does w match one of the space-separated patterns? */
static int pole_match(const char *w, const char *patterns)
{
    const char *p = patterns;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ' ')
            e++;
        size_t len = (size_t)(e - p);
        if (len > 0 && p[0] == w[0]) {
            if (p[len - 1] == '*') {
                if (strncmp(w, p, len - 1) == 0 && ending_ok(w + len - 1))
                    return 1;
            } else if (strlen(w) == len && strncmp(w, p, len) == 0) {
                return 1;
            }
        }
        p = e;
    }
    return 0;
}

void sc_guard_pole_count(const char *w, unsigned char *counts)
{
    if (!w[0])
        return;
    for (size_t g = 0; g < sizeof pole_groups / sizeof pole_groups[0]; g++) {
        if (pole_match(w, pole_groups[g].pos) && counts[2 * g] < 255)
            counts[2 * g]++;
        if (pole_match(w, pole_groups[g].neg) && counts[2 * g + 1] < 255)
            counts[2 * g + 1]++;
    }
}

/* One text has more of a group's one pole and the other more of its other pole: a word replaced by
 * its antonym. An antonym only added ("more or less" / "roughly") is not a flip. */
static int poles_flipped(const unsigned char *a, const unsigned char *b)
{
    for (size_t g = 0; g < sizeof pole_groups / sizeof pole_groups[0]; g++) {
        int ap = a[2 * g], an = a[2 * g + 1], bp = b[2 * g], bn = b[2 * g + 1];
        if ((ap > bp && bn > an) || (an > bn && bp > ap))
            return 1;
    }
    return 0;
}

/* ---- swapped order around a relation word ---- */

typedef struct {
    int pos, clause, left; /* an entity before it must stand after left (between … and) */
    uint8_t kind;
} relation_t;

/* The relation words of w[0..n); returns their count, or -1 when there are more than fit. */
static int relations(const sc_guard_word_t *w, int n, relation_t *r)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!is_relation(w[i].kind))
            continue;
        if (k >= SC_GUARD_MAX_RELATIONS)
            return -1;
        r[k++] = (relation_t){i, w[i].clause, -1, w[i].kind};
        if (w[i].kind != KIND_BETWEEN)
            continue;
        for (int j = i + 1; j < n && w[j].clause == w[i].clause; j++)
            if (w[j].kind == KIND_AND) {
                if (k >= SC_GUARD_MAX_RELATIONS)
                    return -1;
                r[k++] = (relation_t){j, w[j].clause, i, KIND_BETWEEN_AND};
                break;
            }
    }
    return k;
}

/* Masks of the relations an entity at i stands before and after, in its clause. */
static void entity_masks(const sc_guard_word_t *w, int i, const relation_t *r, int nr,
                         uint64_t *before, uint64_t *after)
{
    for (int m = 0; m < nr; m++) {
        if (r[m].clause != w[i].clause)
            continue;
        if (i < r[m].pos && i > r[m].left)
            *before |= 1ULL << m;
        else if (i > r[m].pos)
            *after |= 1ULL << m;
    }
}

typedef struct {
    uint64_t h;
    uint64_t bef_a, aft_a, bef_b, aft_b;
    int in_b;
} shared_t;

/* Two different entities x, y of both texts with x before and y after a relation word in a, and y
 * before and x after a relation word of the same kind in b (in its clause, and not on both sides of
 * it). -1: too many relation words. */
static int order_swapped(const sc_guard_word_t *a, int na, const sc_guard_word_t *b, int nb)
{
    relation_t ra[SC_GUARD_MAX_RELATIONS], rb[SC_GUARD_MAX_RELATIONS];
    int nra = relations(a, na, ra), nrb = relations(b, nb, rb);
    if (nra < 0 || nrb < 0)
        return -1;
    if (nra == 0 || nrb == 0)
        return 0;
    shared_t s[SC_GUARD_ORDER_MAX_WORDS];
    int ns = 0;
    for (int i = 0; i < na; i++) {
        if (a[i].kind != SC_GUARD_KIND_ENTITY)
            continue;
        int k = 0;
        while (k < ns && s[k].h != a[i].h)
            k++;
        if (k == ns) {
            if (ns >= SC_GUARD_ORDER_MAX_WORDS)
                return -1;
            s[ns++] = (shared_t){a[i].h, 0, 0, 0, 0, 0};
        }
        entity_masks(a, i, ra, nra, &s[k].bef_a, &s[k].aft_a);
    }
    for (int i = 0; i < nb; i++) {
        if (b[i].kind != SC_GUARD_KIND_ENTITY)
            continue;
        for (int k = 0; k < ns; k++)
            if (s[k].h == b[i].h) {
                s[k].in_b = 1;
                entity_masks(b, i, rb, nrb, &s[k].bef_b, &s[k].aft_b);
                break;
            }
    }
    for (int ma = 0; ma < nra; ma++)
        for (int mb = 0; mb < nrb; mb++) {
            if (ra[ma].kind != rb[mb].kind)
                continue;
            uint64_t bit_a = 1ULL << ma, bit_b = 1ULL << mb;
            int x = -1, y = -1, nx = 0, ny = 0;
            for (int k = 0; k < ns; k++) {
                if (!s[k].in_b)
                    continue;
                /* a word on both sides of the relation word in one text is no clear operand */
                uint64_t ba = s[k].bef_a & ~s[k].aft_a, aa = s[k].aft_a & ~s[k].bef_a;
                uint64_t bb = s[k].bef_b & ~s[k].aft_b, ab = s[k].aft_b & ~s[k].bef_b;
                if ((ba & bit_a) && (ab & bit_b)) {
                    x = k;
                    nx++;
                }
                if ((aa & bit_a) && (bb & bit_b)) {
                    y = k;
                    ny++;
                }
            }
            if (nx > 0 && ny > 0 && (nx > 1 || ny > 1 || x != y))
                return 1;
        }
    return 0;
}

/* The same words but two entities exchanged in one clause, with a word between them that is no
 * article and no symmetric connector between them ("Alice pays Bob" / "Bob pays Alice"; "A and B" /
 * "B and A", "a fruit or a vegetable" pass). */
static int entities_exchanged(const sc_guard_word_t *a, int na, const sc_guard_word_t *b, int nb)
{
    if (na != nb)
        return 0;
    int d[3], nd = 0;
    for (int i = 0; i < na && nd < 3; i++)
        if (a[i].h != b[i].h || a[i].kind != b[i].kind)
            d[nd++] = i;
    if (nd != 2)
        return 0;
    int i = d[0], j = d[1];
    if (a[i].h != b[j].h || a[j].h != b[i].h || a[i].kind != SC_GUARD_KIND_ENTITY ||
        a[j].kind != SC_GUARD_KIND_ENTITY || j == i + 1)
        return 0;
    int asymmetric = 0;
    for (int k = i + 1; k < j; k++) {
        if (a[k].clause != a[i].clause || a[k].kind == KIND_AND || a[k].kind == KIND_CONNECTOR)
            return 0; /* a list ("apples, pears and plums"), or "a kilogram of X or of Y" */
        asymmetric |= a[k].kind != KIND_DETERMINER;
    }
    return asymmetric && a[j].clause == a[i].clause;
}

sc_guard_reason_t sc_guard_order_check(const sc_guard_word_t *a, int na, const sc_guard_word_t *b,
                                       int nb, const unsigned char *pa, const unsigned char *pb)
{
    if (na > SC_GUARD_ORDER_MAX_WORDS || nb > SC_GUARD_ORDER_MAX_WORDS)
        return SC_GUARD_ORDER;
    int sw = order_swapped(a, na, b, nb);
    if (sw != 0 || entities_exchanged(a, na, b, nb))
        return SC_GUARD_ORDER;
    if (poles_flipped(pa, pb))
        return SC_GUARD_POLARITY;
    return SC_GUARD_OK;
}
