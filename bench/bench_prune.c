/* bench_prune.c - context pruning on generated agent conversations (20-200 turns; with --long,
 * 5k-20k history tokens behind a 5,000-token system prompt) with one fact planted in an earlier
 * user turn and a closing question about it: prompt tokens before/after at the budget, and how
 * often the fact reaches the upstream. Writes bench/results/prune.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "bench/bench_util.h"
#include "host/core/log.h"
#include "host/core/message.h"
#include "host/core/tokens.h"
#include "host/core/util.h"
#include "models/encoder.h"
#include "pipelines/stages/prune.h"

#define BENCH_TURN_MAX  4096 /* bytes of one generated turn */
#define BENCH_MIN_TURNS 20
#define BENCH_MAX_TURNS 200
#define BENCH_CMD_MAX   2048
#define BENCH_N_BUCKETS 4
#define BENCH_N_SELECT  5

/* ---- a small seeded generator ---- */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static int rng_int(int lo, int hi) /* [lo, hi] */
{
    return lo + (int)(rng_next() % (uint64_t)(hi - lo + 1));
}

#define PICK(arr) ((arr)[rng_next() % SC_ARRAY_LEN(arr)])

/* ---- vocabulary for the slots ---- */

static const char *const names[] = {"Priya Raman",   "Tomasz Wojcik", "Amara Okafor",
                                    "Lucas Moreau",  "Hannah Becker", "Kenji Watanabe",
                                    "Sofia Alvarez", "Daniel Osei",   "Ingrid Larsen",
                                    "Mateo Rossi",   "Aisha Khan",    "Oliver Grant"};
static const char *const cities[] = {"Rotterdam", "Lyon",   "Porto", "Gdansk", "Leeds",   "Bilbao",
                                     "Graz",      "Aarhus", "Turin", "Cork",   "Tampere", "Brno"};
static const char *const months[] = {"January",   "February", "March",    "April",
                                     "May",       "June",     "July",     "August",
                                     "September", "October",  "November", "December"};
static const char *const products[] = {
    "Archer AX55 router", "Pro 14 laptop",   "standing desk",   "noise-cancelling headset",
    "4K monitor",         "mesh Wi-Fi kit",  "ergonomic chair", "label printer",
    "USB-C dock",         "smart thermostat"};
static const char *const tables[] = {"orders",   "customers", "invoices",      "sessions",
                                     "payments", "shipments", "subscriptions", "events"};
static const char *const columns[] = {"created_at",  "region", "amount",  "status",
                                      "customer_id", "plan",   "country", "channel"};
static const char *const services[] = {"checkout",      "search",    "billing",   "auth",
                                       "notifications", "inventory", "reporting", "ingest"};

/* Expand a template: %N name, %C city, %D date, %P product, %T table, %K column, %S service,
 * %A amount, %R percent, %n small number, %H time, %I ticket id, %% a percent sign. */
static size_t expand(const char *tpl, char *out, size_t cap, size_t used)
{
    for (const char *p = tpl; *p && used + 64 < cap; p++) {
        char tmp[64];
        const char *s = tmp;
        if (*p != '%') {
            out[used++] = *p;
            continue;
        }
        p++;
        switch (*p) {
        case 'N':
            s = PICK(names);
            break;
        case 'C':
            s = PICK(cities);
            break;
        case 'D':
            snprintf(tmp, sizeof tmp, "%s %d", PICK(months), rng_int(1, 28));
            break;
        case 'P':
            s = PICK(products);
            break;
        case 'T':
            s = PICK(tables);
            break;
        case 'K':
            s = PICK(columns);
            break;
        case 'S':
            s = PICK(services);
            break;
        case 'A':
            snprintf(tmp, sizeof tmp, "%d,%03d", rng_int(1, 48), rng_int(0, 999));
            break;
        case 'R':
            snprintf(tmp, sizeof tmp, "%d%%", rng_int(2, 35));
            break;
        case 'n':
            snprintf(tmp, sizeof tmp, "%d", rng_int(2, 40));
            break;
        case 'H':
            snprintf(tmp, sizeof tmp, "%02d:%02d", rng_int(0, 23), rng_int(0, 59));
            break;
        case 'I':
            snprintf(tmp, sizeof tmp, "%c%c-%d", 'A' + rng_int(0, 25), 'A' + rng_int(0, 25),
                     rng_int(1000, 99999));
            break;
        case '%':
            s = "%";
            break;
        default:
            s = "";
            p--;
            break;
        }
        size_t l = strlen(s);
        if (used + l + 1 >= cap)
            break;
        memcpy(out + used, s, l);
        used += l;
    }
    out[used] = '\0';
    return used;
}

/* ---- conversation templates, per domain ---- */

typedef struct {
    const char *name;
    const char *system;
    const char *const *user;
    size_t n_user;
    const char *const *model;
    size_t n_model;
} domain_t;

static const char *const support_user[] = {
    "My %P stopped working after the latest firmware update. It powers on but nothing else "
    "happens.",
    "I already tried a factory reset twice. Is there anything else I can do before sending it "
    "back?",
    "The replacement you sent has the same problem. This is getting frustrating.",
    "Can you check whether my warranty still covers the %P? I bought it on %D.",
    "The status page says the parcel is delayed in %C. How long does that usually take?",
    "I was charged twice for the same order, once on %D and again two days later.",
    "Which cable should I use to connect it to the dock, the one in the box or a USB-C one?",
    "The app keeps logging me out every few minutes. I am on the latest version.",
    "OK, I did what you said and the light is now blinking orange. What does that mean?",
    "Could you send me the instructions by email as well? I want to keep them.",
    "My colleague %N has the same model and hers works fine with the same settings.",
    "Is there a way to speed up the return? I need a working device for a trip on %D.",
};
static const char *const support_model[] = {
    "I am sorry to hear that the %P is giving you trouble.",
    "Let us start with the basics so we can rule out a power issue.",
    "Please unplug the device, wait thirty seconds and plug it back in while holding the reset "
    "button.",
    "If the light stays solid orange for more than two minutes, the firmware did not install "
    "correctly.",
    "Your warranty is valid for %n months from the date of purchase, so you are still covered.",
    "I can see a duplicate charge of %A on your account; the second one will be refunded within %n "
    "business days.",
    "Parcels held at our hub in %C usually move again within %n days.",
    "I have opened case %I for you so you do not need to repeat these steps if you contact us "
    "again.",
    "A blinking orange light means the device is waiting for a network connection.",
    "Please make sure the app is allowed to run in the background, otherwise the session expires.",
    "If none of this helps, we will arrange a replacement and a prepaid return label.",
    "You can also find the full troubleshooting guide in the help centre under the product page.",
    "The courier will contact you to schedule the pickup once the label is issued.",
    "For security reasons I cannot change the delivery address after the order is dispatched.",
};

static const char *const sales_user[] = {
    ("We are evaluating your platform for a team of about %n people. What would the pricing look "
     "like?"),
    "Do you offer a discount for annual billing compared to monthly?",
    "Our procurement team in %C needs a formal quote before %D.",
    "How does the Business plan differ from Enterprise in terms of support response times?",
    "Can we start with a pilot for one department and expand later?",
    "%N from our finance team asked whether you accept purchase orders.",
    "What happens to our data if we decide not to renew?",
    "Is single sign-on included or is it an add-on?",
    "We currently pay about %A a year to a competitor. Can you beat that?",
    "Could you send over the security questionnaire and your SOC 2 report?",
};
static const char *const sales_model[] = {
    "Thanks for considering us for your team.",
    "For a team of that size the Business plan is usually the best fit.",
    "Annual billing comes with a %R discount compared to paying monthly.",
    ("The Enterprise plan adds a dedicated account manager and a one hour response time for "
     "critical issues."),
    "A pilot with one department is a common way to start, and seats can be added at any time.",
    "We accept purchase orders for contracts above %A per year.",
    "If you do not renew, you can export all of your data for %n days after the contract ends.",
    "Single sign-on with SAML is included in Business and Enterprise.",
    "I will prepare a formal quote and send it to your procurement contact.",
    "Our security documentation, including the SOC 2 Type II report, is available under NDA.",
    "Many customers in your industry see a return on the investment within the first quarter.",
    "I can set up a call with our solutions engineer, %N, to walk through the integration.",
};

static const char *const sql_user[] = {
    "Write a query that returns monthly revenue from the %T table grouped by %K.",
    "The query is slow on production. The %T table has about %n million rows.",
    "Can you add a filter so only rows after %D are included?",
    "Why does this return duplicates when I join %T with customers?",
    "I need the top %n customers by total amount, with ties broken by signup date.",
    "How do I turn this into a materialised view that refreshes every night?",
    "The column %K has nulls in it. How should I handle them in the average?",
    "Can you explain what the window function in your last answer does?",
    "Our analyst %N wants the same report but per week instead of per month.",
    "Is it better to add an index on %K or on the date column?",
};
static const char *const sql_model[] = {
    "Here is a version that groups by month using date_trunc:\n\n```sql\nSELECT "
    "date_trunc('month', created_at) AS month, %K, SUM(amount) AS revenue\nFROM %T\nGROUP BY 1, "
    "2\nORDER BY 1;\n```",
    "The duplicates come from the join: each customer can have several matching rows, so aggregate "
    "before joining.",
    "An index on the filter column will let the planner skip most of the table.",
    "With around %n million rows, a sequential scan is expected without a suitable index.",
    "You can use COALESCE to replace nulls with zero, but that changes the meaning of the average.",
    "AVG ignores nulls by default, which is usually what you want for this metric.",
    "The window function ranks rows within each partition without collapsing them like GROUP BY "
    "does.",
    "To refresh nightly, create a materialised view and schedule REFRESH MATERIALIZED VIEW "
    "CONCURRENTLY.",
    "Run EXPLAIN ANALYZE on the query and look for the node with the largest actual time.",
    "For weekly numbers, replace the month truncation with date_trunc('week', created_at).",
    "Remember that date_trunc uses the session time zone unless you convert the timestamp first.",
    "A composite index on (%K, created_at) would serve both the filter and the sort.",
};

static const char *const hr_user[] = {
    "How many days of annual leave do I have left this year?",
    "I would like to take parental leave starting %D. What do I need to submit?",
    "My manager %N asked me to check the policy on remote work from abroad.",
    "Can I carry over unused holiday days into next year?",
    "I moved to %C last month. How do I update my address for payroll?",
    "Is the learning budget per calendar year or per financial year?",
    "When is the next performance review cycle?",
    "Our team would like to hire a contractor for %n weeks. Who approves that?",
    "What is the process if I am sick for more than three days?",
    "I have not received my payslip for last month. Who should I contact?",
};
static const char *const hr_model[] = {
    "According to the leave policy, full-time employees receive %n days of annual leave.",
    "Up to five unused days can be carried over and must be taken before the end of March.",
    "Parental leave requests should be submitted at least eight weeks before the start date.",
    "Working from abroad is allowed for up to %n days per year with your manager's approval.",
    "You can update your address yourself in the employee portal under Personal details.",
    "The learning budget is %A per calendar year and does not roll over.",
    "The next review cycle opens on %D and self-assessments are due two weeks later.",
    "Contractor engagements need approval from the budget owner and a purchase order from finance.",
    "For absences longer than three days, please upload a doctor's note in the portal.",
    "Payslips are published on the last working day of the month; the payroll team can resend it.",
    "I have created request %I so that the people team can follow up with you directly.",
    "Let me know if you would like me to book a meeting with your HR business partner, %N.",
};

static const char *const ops_user[] = {
    "The %S service is returning 502 errors since the deploy at %H.",
    "Error rates went up to %R on the %S pods. Should we roll back?",
    "Can you help me write a runbook entry for this alert?",
    "The disk on the database replica in %C is at 91 percent. What can we clean up?",
    "Latency for %S doubled after we enabled the new cache layer.",
    "How do I check which version of the %S image is running in production?",
    "We need a postmortem draft for the outage. %N will review it.",
    "Is it safe to scale the %S deployment down to %n replicas overnight?",
    "The on-call engineer says the health check is flapping. Any idea why?",
    "Can you suggest alert thresholds for queue depth on the %S workers?",
};
static const char *const ops_model[] = {
    "A spike of 502s right after a deploy usually means the new pods fail their readiness checks.",
    "Check the pod events with kubectl describe and look for failed probes or image pull errors.",
    "If the error rate stays above the SLO for more than ten minutes, rolling back is the safer "
    "option.",
    "```\nkubectl -n prod get deploy %S -o "
    "jsonpath='{.spec.template.spec.containers[0].image}'\n```",
    "Old write-ahead log segments and unused replication slots are the usual culprits for disk "
    "growth.",
    "A flapping health check often points to a timeout that is too tight for cold starts.",
    "For queue depth, alert when it exceeds %n times the normal peak for more than five minutes.",
    "The postmortem should cover the timeline, the impact, the root cause and the follow-up "
    "actions.",
    "Scaling down overnight is fine as long as the horizontal autoscaler keeps a floor of two "
    "replicas.",
    "The cache layer adds a network hop, so compare p50 and p99 separately before drawing "
    "conclusions.",
    "I have drafted the runbook steps below; adjust the names to match your dashboards.",
    "Consider pinning the image by digest so a rollback restores exactly the previous build.",
};

static const char *const generic_model[] = {
    "Let me know if anything is unclear.",
    "I hope this helps; happy to go into more detail.",
    ("To summarise the options: we can try the quick fix first and fall back to the longer route if "
     "needed."),
    "Please keep in mind that these numbers are estimates and may change.",
    "If you share a bit more context I can give a more precise answer.",
    "This is a common situation and there are a few ways to handle it.",
};

static const domain_t domains[] = {
    {"support",
     "You are a customer support agent for an electronics retailer. Be concise and polite.",
     support_user, SC_ARRAY_LEN(support_user), support_model, SC_ARRAY_LEN(support_model)},
    {"sales", "You are a sales assistant for a B2B software company. Answer accurately.",
     sales_user, SC_ARRAY_LEN(sales_user), sales_model, SC_ARRAY_LEN(sales_model)},
    {"sql", "You are a data analyst assistant who writes PostgreSQL.", sql_user,
     SC_ARRAY_LEN(sql_user), sql_model, SC_ARRAY_LEN(sql_model)},
    {"hr", "You are the HR help desk assistant. Refer to company policy.", hr_user,
     SC_ARRAY_LEN(hr_user), hr_model, SC_ARRAY_LEN(hr_model)},
    {"ops", "You are an SRE assistant helping the on-call engineer.", ops_user,
     SC_ARRAY_LEN(ops_user), ops_model, SC_ARRAY_LEN(ops_model)},
};

/* ---- planted facts: one user statement and the closing question about it ---- */

#define FACT_KINDS 8

/* Write the fact statement and a question about it (one of three phrasings, some naming the
 * identifier, some not). */
static void plant(int kind, char *fact, size_t flen, char *q, size_t qlen)
{
    char id[32];
    const char *city = PICK(cities), *name = PICK(names), *month = PICK(months);
    int day = rng_int(1, 28), v = rng_int(0, 2);
    switch (kind) {
    case 0:
        snprintf(id, sizeof id, "%c-%d", 'A' + rng_int(0, 25), rng_int(10000, 99999));
        snprintf(fact, flen, "My order number is %s and it was shipped to %s on %s %d.", id, city,
                 month, day);
        snprintf(q, qlen, "%s",
                 v == 0   ? "Where was my order shipped?"
                 : v == 1 ? "Remind me, which city did the order go to, and on what date?"
                          : "");
        if (v == 2)
            snprintf(q, qlen, "Can you confirm where order %s was shipped?", id);
        break;
    case 1:
        snprintf(fact, flen,
                 "For context, the production database is called %s_prod and listens on port %d "
                 "on host db%d.internal.",
                 PICK(tables), rng_int(5400, 5499), rng_int(1, 9));
        snprintf(q, qlen, "%s",
                 v == 0   ? "Which port does the production database listen on?"
                 : v == 1 ? "What was the host name of the production database again?"
                          : "Remind me of the production database name and port.");
        break;
    case 2:
        snprintf(fact, flen, "My employee ID is E%d and my line manager is %s, based in %s.",
                 rng_int(100000, 999999), name, city);
        snprintf(q, qlen, "%s",
                 v == 0   ? "Who did I say my line manager is?"
                 : v == 1 ? "What is my employee ID?"
                          : "Which office is my manager based in?");
        break;
    case 3:
        snprintf(fact, flen,
                 "Just to confirm what we agreed on the call: a %d%% discount on %d seats, valid "
                 "until %s %d.",
                 rng_int(5, 40), rng_int(10, 500), month, day);
        snprintf(q, qlen, "%s",
                 v == 0   ? "What discount did we agree on?"
                 : v == 1 ? "Until when is the agreed discount valid?"
                          : "How many seats did the agreed discount cover?");
        break;
    case 4:
        snprintf(fact, flen,
                 "Timeline note: the incident began at %02d:%02d UTC when the %s service ran out "
                 "of memory on node %d.",
                 rng_int(0, 23), rng_int(0, 59), PICK(services), rng_int(1, 64));
        snprintf(q, qlen, "%s",
                 v == 0   ? "What time did the incident begin?"
                 : v == 1 ? "Which service ran out of memory when the incident started?"
                          : "For the postmortem, at what time and on which node did it start?");
        break;
    case 5:
        snprintf(fact, flen, "I am flying out on flight KL%d from %s, gate %c%d, on %s %d.",
                 rng_int(100, 1999), city, 'A' + rng_int(0, 7), rng_int(1, 60), month, day);
        snprintf(q, qlen, "%s",
                 v == 0   ? "Which gate did I say my flight leaves from?"
                 : v == 1 ? "What is my flight number?"
                          : "When am I flying out?");
        break;
    case 6:
        snprintf(fact, flen, "The campaign budget is %d,%03d euros per month, approved by %s.",
                 rng_int(2, 90), rng_int(0, 999), name);
        snprintf(q, qlen, "%s",
                 v == 0   ? "What is the approved campaign budget?"
                 : v == 1 ? "Who approved the campaign budget?"
                          : "How much can we spend on the campaign each month?");
        break;
    default:
        snprintf(id, sizeof id, "RF-%d", rng_int(100000, 999999));
        snprintf(fact, flen, "The refund reference is %s and the amount is %d.%02d dollars.", id,
                 rng_int(10, 2000), rng_int(0, 99));
        snprintf(q, qlen, "%s",
                 v == 0   ? "How much was the refund for?"
                 : v == 1 ? "What was the refund reference number?"
                          : "Can you repeat the refund amount and reference?");
        break;
    }
}

static const char *const fact_leads[] = {
    "", "Before I forget: ", "One detail that matters: ", "Also, ", "Noting this here: "};
static const char *const ack_model[] = {
    "Thanks, noted. I will keep that in mind for the rest of this conversation.",
    "Got it, thank you for the details.",
    "Understood. Let us continue with the original question.",
    "Thanks for sharing that; it will help if we need to follow up later.",
};
static const char *const closing_leads[] = {
    "", "One more thing. ", "Before we wrap up: ", "Quick question. ", "Sorry, I lost track. "};

/* One conversation: n turns (n odd: user first and last), the planted turn index, as JSON. */
static char *make_conversation(int idx, int n, int *planted)
{
    const domain_t *d = &domains[rng_next() % SC_ARRAY_LEN(domains)];
    char fact[512], question[256], turn[BENCH_TURN_MAX];
    json_t *msgs = json_array();
    int kind = rng_int(0, FACT_KINDS - 1);
    /* a user turn among the middle ones: not in the last 4 turns (those are kept anyway) */
    int p = 2 * rng_int(0, (n - 5) / 2);

    plant(kind, fact, sizeof fact, question, sizeof question);
    for (int i = 0; i < n; i++) {
        size_t used = 0;
        if (i == n - 1) {
            used = expand(PICK(closing_leads), turn, sizeof turn, 0);
            used = expand(question, turn, sizeof turn, used);
        } else if (i == p) {
            used = expand(PICK(fact_leads), turn, sizeof turn, 0);
            used = expand(fact, turn, sizeof turn, used);
            if (rng_int(0, 1)) {
                turn[used++] = ' ';
                used = expand(d->user[rng_next() % d->n_user], turn, sizeof turn, used);
            }
        } else if (i == p + 1 && rng_int(0, 1)) {
            used = expand(PICK(ack_model), turn, sizeof turn, 0);
        } else if (i % 2 == 0) {
            int k = rng_int(1, 3); /* 1-3 sentences */
            for (int s = 0; s < k; s++) {
                if (s)
                    turn[used++] = ' ';
                used = expand(d->user[rng_next() % d->n_user], turn, sizeof turn, used);
            }
        } else {
            int k = rng_int(3, 9); /* replies run longer */
            for (int s = 0; s < k && used + 600 < sizeof turn; s++) {
                if (s)
                    turn[used++] = rng_int(0, 4) ? ' ' : '\n';
                const char *tpl =
                    rng_int(0, 5) ? d->model[rng_next() % d->n_model] : PICK(generic_model);
                used = expand(tpl, turn, sizeof turn, used);
            }
        }
        json_array_append_new(msgs, json_pack("{s:s, s:s%}", "role", i % 2 ? "model" : "user",
                                              "content", turn, used));
    }
    json_t *root =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "id", "bench", "tenant", "bench", "agent",
                  d->name, "conversation_id", "c", "system", d->system, "messages", msgs);
    char id[32];
    snprintf(id, sizeof id, "bench-%d", idx);
    json_object_set_new(root, "id", json_string(id));
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    *planted = p;
    return s;
}

/* ---- long conversations behind a 5,000-token system prompt ---- */

#define LONG_SYSTEM_TOKENS 5000
#define LONG_MIN_HISTORY   5000
#define LONG_MAX_HISTORY   20000
#define LONG_MAX_TURNS     600
#define LONG_N_SELECT      4
#define LONG_N_POS         3
#define LONG_SYSTEM_MAX    (64 * 1024)

/* the domain whose turns surround a fact of this kind: the distractors are on its topic */
static const domain_t *long_domain(int kind)
{
    static const int of_kind[FACT_KINDS] = {0, 4, 3, 1, 4, 3, 1, 0}; /* see plant() */
    if (kind == 1 && rng_int(0, 1))
        return &domains[2]; /* the database fact among SQL turns, or among ops turns */
    return &domains[of_kind[kind]];
}

/* A product-catalogue system prompt of about LONG_SYSTEM_TOKENS tokens (by sc_tokens_base). */
static char *long_system(const char *lead)
{
    char *s = malloc(LONG_SYSTEM_MAX);
    size_t used = 0;
    if (!s)
        return NULL;
    used = (size_t)snprintf(s, LONG_SYSTEM_MAX,
                            "%s Use only the catalogue and the policies below; quote prices and "
                            "SKUs exactly.\n\nCATALOGUE\n",
                            lead);
    for (int k = 0; used + 512 < LONG_SYSTEM_MAX; k++) {
        if (sc_tokens_estimate(NULL, NULL, s, used) >= LONG_SYSTEM_TOKENS)
            break;
        used +=
            (size_t)snprintf(s + used, LONG_SYSTEM_MAX - used,
                             "- SKU %c%c%d: %s, model year %d, list price %d.%02d EUR, "
                             "warranty %d months, ships from %s within %d working days; "
                             "returns accepted for %d days if unused.\n",
                             'A' + k % 26, 'A' + (k / 26) % 26, 100 + k, PICK(products),
                             2019 + k % 7, rng_int(20, 2400), rng_int(0, 99), 12 * rng_int(1, 3),
                             PICK(cities), rng_int(1, 9), 14 * rng_int(1, 3));
    }
    s[used] = '\0';
    return s;
}

/* One long conversation: turns are added until the history reaches target tokens (odd count:
 * user first and last); one fact planted in a middle user turn at relative position pos in
 * [0, 1) of the middle user turns. The fact text goes to fact. JSON, caller frees. */
static char *make_long_conversation(int idx, long target, double pos, char *fact, size_t flen,
                                    int *planted, int *n_turns, const char *system)
{
    int kind = rng_int(0, FACT_KINDS - 1);
    const domain_t *d = long_domain(kind);
    char question[256], turn[BENCH_TURN_MAX];
    json_t *msgs = json_array();
    long tokens = 0;
    int n = 0;
    /* draft the middle turns first, then place the fact among them */
    plant(kind, fact, flen, question, sizeof question);
    char **texts = calloc(LONG_MAX_TURNS, sizeof(*texts));
    while (n < LONG_MAX_TURNS - 2 && (tokens < target || n % 2 == 1)) {
        size_t used = 0;
        if (n % 2 == 0) {
            int k = rng_int(1, 3);
            for (int s = 0; s < k; s++) {
                if (s)
                    turn[used++] = ' ';
                used = expand(d->user[rng_next() % d->n_user], turn, sizeof turn, used);
            }
        } else {
            int k = rng_int(3, 9);
            for (int s = 0; s < k && used + 600 < sizeof turn; s++) {
                if (s)
                    turn[used++] = rng_int(0, 4) ? ' ' : '\n';
                const char *tpl =
                    rng_int(0, 5) ? d->model[rng_next() % d->n_model] : PICK(generic_model);
                used = expand(tpl, turn, sizeof turn, used);
            }
        }
        texts[n++] = strdup(turn);
        tokens += sc_tokens_estimate(NULL, NULL, turn, used);
    }
    /* n is even here: the closing question makes it odd; the fact goes in a user turn of the
     * middle (never among the last 4 turns) */
    int users = (n - 4) / 2;
    int p = 2 * (int)(pos * (double)(users - 1) + 0.5);
    {
        size_t used = expand(PICK(fact_leads), turn, sizeof turn, 0);
        used = expand(fact, turn, sizeof turn, used);
        if (rng_int(0, 1)) {
            turn[used++] = ' ';
            used = expand(d->user[rng_next() % d->n_user], turn, sizeof turn, used);
        }
        free(texts[p]);
        texts[p] = strdup(turn);
        if (rng_int(0, 1)) {
            free(texts[p + 1]);
            texts[p + 1] = strdup(PICK(ack_model));
        }
    }
    {
        size_t used = expand(PICK(closing_leads), turn, sizeof turn, 0);
        used = expand(question, turn, sizeof turn, used);
        texts[n++] = strdup(turn);
    }
    for (int i = 0; i < n; i++) {
        json_array_append_new(
            msgs, json_pack("{s:s, s:s}", "role", i % 2 ? "model" : "user", "content", texts[i]));
        free(texts[i]);
    }
    free(texts);
    json_t *root =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "id", "bench", "tenant", "bench", "agent",
                  d->name, "conversation_id", "c", "system", system, "messages", msgs);
    char id[32];
    snprintf(id, sizeof id, "long-%d", idx);
    json_object_set_new(root, "id", json_string(id));
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    *planted = p;
    *n_turns = n;
    return s;
}

/* The texts of a body's contents joined (caller frees); NULL on a malformed body. */
static char *long_contents_text(const char *body)
{
    json_error_t jerr;
    json_t *root = json_loads(body, 0, &jerr), *c;
    size_t i, cap = 1, used = 0;
    char *s;
    if (!root)
        return NULL;
    json_array_foreach(json_object_get(root, "contents"), i, c)
    {
        const char *t = json_string_value(
            json_object_get(json_array_get(json_object_get(c, "parts"), 0), "text"));
        cap += (t ? strlen(t) : 0) + 1;
    }
    s = malloc(cap);
    json_array_foreach(json_object_get(root, "contents"), i, c)
    {
        const char *t = json_string_value(
            json_object_get(json_array_get(json_object_get(c, "parts"), 0), "text"));
        size_t l = t ? strlen(t) : 0;
        memcpy(s + used, t, l);
        used += l;
        s[used++] = '\n';
    }
    s[used] = '\0';
    json_decref(root);
    return s;
}

typedef struct {
    const char *name;
    sc_prune_opts_t opts;
    int old_rule;      /* 1: the system prompt counted against the budget (the rule before) */
    double hist, sent; /* history tokens: all, sent (kept + summary reserve) */
    double ratio_sum, ratio_max;
    long reached, kept, carried_only;
    long pos_n[LONG_N_POS], pos_reached[LONG_N_POS];
} long_sel_t;

/* the most turns of one conversation embedded: serve's SC_PRUNE_EMBED_MAX, or --embed-max */
static size_t embed_max = SC_PRUNE_EMBED_MAX;

/* the tokens of a turn that are embedded: serve's SC_PRUNE_EMBED_TOKENS, or --max-tokens if fewer */
#define PRUNE_TOKENS(m) ((m) < SC_PRUNE_EMBED_TOKENS ? (m) : SC_PRUNE_EMBED_TOKENS)

/* Embed the turns of req into vecs (n × SC_EMBED_DIM) as scrimp serve does (at most
 * SC_PRUNE_EMBED_MAX of them, sc_prune_embed_select(); the others zero) and count its tokens (tok:
 * one per turn, *sys: the system prompt), adding the embedding time to *embed_s and the turns
 * embedded to *embedded. 0, or -1 with a message. */
static int embed_turns(sc_encoder_t *enc, const sc_request_t *req, int keep_last, float *vecs,
                       long *tok, long *sys, double *embed_s, long *embedded)
{
    size_t n = req->n_turns, m = 0;
    const char **texts = malloc(n * sizeof(*texts));
    size_t *lens = malloc(n * sizeof(*lens));
    unsigned char *pick = malloc(n);
    float *out = malloc(n * SC_EMBED_DIM * sizeof(float));
    int rc = -1;
    if (!texts || !lens || !pick || !out || !vecs || !tok) {
        fprintf(stderr, "bench_prune: out of memory\n");
        goto out;
    }
    sc_prune_embed_select(req, keep_last, embed_max, pick);
    for (size_t i = 0; i < n; i++)
        if (pick[i]) {
            texts[m] = req->turns[i].content;
            lens[m++] = req->turns[i].content_len;
        }
    int64_t t0 = sc_now_us();
    if (sc_encoder_embed_max(enc, texts, lens, m, SC_PRUNE_EMBED_TOKENS, out) != SC_OK) {
        fprintf(stderr, "bench_prune: embed failed\n");
        goto out;
    }
    *embed_s += (double)(sc_now_us() - t0) / 1e6;
    *embedded += (long)m;
    for (size_t i = 0, k = 0; i < n; i++) {
        if (pick[i])
            memcpy(vecs + i * SC_EMBED_DIM, out + (k++) * SC_EMBED_DIM, SC_EMBED_DIM * sizeof(float));
        else
            memset(vecs + i * SC_EMBED_DIM, 0, SC_EMBED_DIM * sizeof(float));
    }
    sc_prune_count(NULL, NULL, req, tok, sys);
    rc = 0;
out:
    free(texts);
    free(lens);
    free(pick);
    free(out);
    return rc;
}

static const char *const long_pos_names[LONG_N_POS] = {"first third", "middle third", "last third"};

/* The long-conversation section: conversations, budget, keep_last; the markdown to md. */
static int run_long(sc_encoder_t *enc, int n_conv, unsigned long seed, long budget, int keep_last,
                    int max_tokens, const char *cmd, FILE *md)
{
    long_sel_t sel[LONG_N_SELECT];
    sc_limits_t lim;
    char err[512];
    long total_turns = 0, embedded_turns = 0;
    double total_hist = 0, embed_s = 0;
    memset(sel, 0, sizeof sel);
    for (int s = 0; s < LONG_N_SELECT; s++)
        sc_prune_opts_default(&sel[s].opts);
    sel[0].name = "**default**: history budget; identifier bonus and check, cosine + overlap, "
                  "floor, recency window";
    sel[1].name = "history budget, no identifier bonus or check";
    sel[2].name = "history budget, cosine only (no overlap, no identifiers)";
    sel[2].opts.lexical_weight = 0;
    sel[2].opts.prev_turn_weight = 0;
    sel[2].opts.id_weight = 0;
    sel[2].opts.id_guard = 0;
    sel[1].opts.id_weight = 0;
    sel[1].opts.id_guard = 0;
    sel[3].name = "the rule before: the system prompt counted against the budget";
    sel[3].old_rule = 1; /* and the planner of then: no identifiers, no recency window */
    sel[3].opts.id_weight = 0;
    sel[3].opts.id_guard = 0;
    sel[3].opts.recent_pct = 0;
    sc_limits_default(&lim);
    lim.max_messages = LONG_MAX_TURNS + 1;
    lim.max_message_bytes = 4 << 20;
    rng_state = seed ? seed : 1;
    char *system = long_system("You are the assistant of an electronics retailer's customer, "
                               "sales, HR and operations desks.");
    long sys_tok = sc_tokens_estimate(NULL, NULL, system, strlen(system));
    for (int c = 0; c < n_conv; c++) {
        long target = LONG_MIN_HISTORY + rng_int(0, LONG_MAX_HISTORY - LONG_MIN_HISTORY);
        int pos_bucket = c % LONG_N_POS;
        double pos = ((double)pos_bucket + (double)rng_int(0, 999) / 1000.0) / LONG_N_POS;
        char fact[512];
        int planted = 0, n = 0;
        char *js = make_long_conversation(c, target, pos, fact, sizeof fact, &planted, &n, system);
        sc_request_t *req = NULL;
        char idb[64];
        if (sc_request_parse(js, strlen(js), &lim, &req, idb, sizeof idb, err, sizeof err) !=
            SC_OK) {
            fprintf(stderr, "bench_prune: generated request invalid: %s\n", err);
            return 1;
        }
        float *vecs = malloc((size_t)n * SC_EMBED_DIM * sizeof(float));
        long *tok = malloc((size_t)n * sizeof(long)), st_sys = 0;
        if (embed_turns(enc, req, keep_last, vecs, tok, &st_sys, &embed_s, &embedded_turns) != 0)
            return 1;
        total_turns += n;
        /* what must reach the upstream: every identifier-like token of the planted fact */
        char fids[SC_PRUNE_MAX_IDS][SC_PRUNE_ID_MAX];
        size_t nf = sc_prune_ids(fact, strlen(fact), fids, SC_PRUNE_MAX_IDS);
        double hist = 0;
        for (int i = 0; i < n; i++)
            hist += (double)tok[i];
        total_hist += hist;
        for (int s = 0; s < LONG_N_SELECT; s++) {
            long_sel_t *x = &sel[s];
            sc_prune_plan_t plan;
            long b = x->old_rule ? (budget > st_sys + 1 ? budget - st_sys : 1) : budget;
            sc_status_t st =
                sc_prune_plan_opts(req, tok, st_sys, vecs, b, keep_last, &x->opts, &plan);
            if (st != SC_OK) {
                fprintf(stderr, "bench_prune: plan: %s\n", sc_strerror(st));
                return 1;
            }
            if (x->old_rule && plan.pruned) {
                /* before, the reserve was a share of the whole budget and the system prompt
                 * took the rest: no middle turn fitted */
                plan.summary_reserve = budget * SC_PRUNE_SUMMARY_RESERVE_PCT / 100;
            }
            double sent =
                plan.pruned ? (double)(plan.kept_history_tokens + plan.summary_reserve) : hist;
            char *body = sc_prune_body(req, &plan, NULL, NULL);
            char *all = body ? long_contents_text(body) : NULL;
            int reached = all != NULL && nf > 0;
            for (size_t k = 0; all && k < nf; k++)
                reached &= sc_prune_has_token(all, strlen(all), fids[k]);
            x->hist += hist;
            x->sent += sent;
            x->ratio_sum += sent / hist;
            if (sent / hist > x->ratio_max)
                x->ratio_max = sent / hist;
            x->reached += reached;
            x->kept += plan.keep[planted];
            x->carried_only += reached && !plan.keep[planted];
            x->pos_n[pos_bucket]++;
            x->pos_reached[pos_bucket] += reached;
            if (getenv("BENCH_PRUNE_DEBUG") && s == 0 && !reached)
                fprintf(stderr, "long %d miss: n %d planted %d score %.3f fact '%s' q '%s'\n", c, n,
                        planted, plan.score ? plan.score[planted] : 0.0f, fact,
                        req->turns[n - 1].content);
            free(all);
            free(body);
            sc_prune_plan_clear(&plan);
        }
        free(vecs);
        free(tok);
        free(js);
        sc_request_free(req);
        if ((c + 1) % 10 == 0)
            fprintf(stderr, "bench_prune: long %d/%d conversations\n", c + 1, n_conv);
    }
    free(system);

    char cpu[256], date[64];
    sc_bench_cpu_model(cpu, sizeof cpu);
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    FILE *outs[2] = {stdout, md};
    for (int o = 0; o < 2; o++) {
        FILE *w = outs[o];
        fprintf(w, "\n## Long conversations behind a %d-token system prompt\n\n",
                LONG_SYSTEM_TOKENS);
        fprintf(w, "- machine: %s, %ld cores online\n- date: %s\n- command: `%s`\n", cpu,
                sysconf(_SC_NPROCESSORS_ONLN), date, cmd);
        fprintf(w,
                "- workload: %d generated conversations (seed %lu), history %d-%d tokens "
                "(mean %.0f; %.1f turns), behind a %ld-token product-catalogue system prompt; "
                "the turns around the fact are on its topic (the support, sales, SQL, HR or ops "
                "desk it belongs to, with their own order/case numbers, amounts, names and "
                "dates); ONE fact planted in a middle user turn, a third of the conversations "
                "each with it in the first, middle and last third of the middle turns; the last "
                "user turn asks for it (some phrasings name its identifier, most do not)\n",
                n_conv, seed, LONG_MIN_HISTORY, LONG_MAX_HISTORY, total_hist / n_conv,
                (double)total_turns / n_conv, sys_tok);
        fprintf(w,
                "- `prune.max_tokens` %ld (the history's budget), keep_last %d, summary reserve "
                "%d%% counted as sent; embeddings: all-MiniLM-L6-v2 on the CPU, first %d "
                "WordPiece tokens of each turn, at most %d turns of a conversation as scrimp serve "
                "embeds them (the query, the protected tail, the lexically most relevant; the "
                "others ranked lexically): %ld of %ld turns, %.1f s\n",
                budget, keep_last, SC_PRUNE_SUMMARY_RESERVE_PCT, PRUNE_TOKENS(max_tokens), (int)embed_max,
                embedded_turns, total_turns, embed_s);
        fprintf(w, "- **fact reached** = every identifier-like token of the planted fact "
                   "(numbers, codes, names, dates) is in the contents sent, the summary not "
                   "counted (the planted turn kept, or its sentence carried verbatim); **history "
                   "sent** = kept turns + carried excerpts + the summary reserve, over the full "
                   "history (the system prompt, sent whole, is not in either)\n\n");
        fprintf(w, "| selector | fact reached | planted turn kept | history sent (sum) | "
                   "history sent (mean per conversation) | worst conversation |\n"
                   "|---|---:|---:|---:|---:|---:|\n");
        for (int s = 0; s < LONG_N_SELECT; s++) {
            long_sel_t *x = &sel[s];
            fprintf(w, "| %s | %.1f%% (%ld/%d) | %.1f%% | %.1f%% | %.1f%% | %.1f%% |\n", x->name,
                    100.0 * (double)x->reached / n_conv, x->reached, n_conv,
                    100.0 * (double)x->kept / n_conv, 100.0 * x->sent / x->hist,
                    100.0 * x->ratio_sum / n_conv, 100.0 * x->ratio_max);
        }
        fprintf(w, "\nBy where the fact sits (default selector):\n\n| position | conversations "
                   "| fact reached |\n|---|---:|---:|\n");
        for (int p = 0; p < LONG_N_POS; p++)
            fprintf(w, "| %s | %ld | %.1f%% |\n", long_pos_names[p], sel[0].pos_n[p],
                    sel[0].pos_n[p]
                        ? 100.0 * (double)sel[0].pos_reached[p] / (double)sel[0].pos_n[p]
                        : 0.0);
        fprintf(w,
                "\nAcceptance (issue 15, item 4): fact reached >= 95%%, history sent <= 35%% of "
                "the full history. Default: %.1f%% reached (%ld by a carried excerpt only), "
                "%.1f%% of the history sent -> %s.\n",
                100.0 * (double)sel[0].reached / n_conv, sel[0].carried_only,
                100.0 * sel[0].sent / sel[0].hist,
                (double)sel[0].reached >= 0.95 * n_conv && sel[0].sent <= 0.35 * sel[0].hist
                    ? "met"
                    : "NOT met");
    }
    return 0;
}

/* ---- the run ---- */

typedef struct {
    const char *name;
    sc_prune_opts_t opts;
    int use_vecs;
    int recency; /* 1: ignore relevance, keep the most recent middle turns */
    double before, after;
    long kept, pruned_convs;
    long b_kept[BENCH_N_BUCKETS], b_n[BENCH_N_BUCKETS], b_pruned[BENCH_N_BUCKETS];
    double b_before[BENCH_N_BUCKETS], b_after[BENCH_N_BUCKETS];
} selector_t;

static int bucket_of(int n)
{
    return n < 50 ? 0 : n < 100 ? 1 : n < 150 ? 2 : 3;
}
static const char *const bucket_names[BENCH_N_BUCKETS] = {"20-49", "50-99", "100-149", "150-200"};

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_prune [--n N] [--seed S] [--budget T] [--keep-last K] [--threads T]\n"
            "                   [--max-tokens M] [--model-dir D] [--out FILE] [--long N]\n"
            "                   [--embed-max N]\n"
            "  --embed-max N: at most N turns of a conversation embedded (serve: %d)\n"
            "  --long N: only the section on N long conversations behind a 5,000-token system\n"
            "            prompt, written in place of that section of FILE (the rest kept)\n",
            SC_PRUNE_EMBED_MAX);
    exit(2);
}

int main(int argc, char **argv)
{
    int n_conv = 100, keep_last = 3, threads = 0, max_tokens = 128, n_long = 0;
    long budget = 4000;
    unsigned long seed = 20240611;
    const char *out_path = "bench/results/prune.md";
    sc_encoder_opts_t eo;
    char cmd[BENCH_CMD_MAX] = "", err[512];
    size_t cl = 0;

    sc_encoder_opts_default(&eo);
    for (int i = 0; i < argc; i++) {
        size_t l = strlen(argv[i]);
        if (cl + l + 2 < sizeof cmd) {
            memcpy(cmd + cl, argv[i], l);
            cl += l;
            cmd[cl++] = i + 1 < argc ? ' ' : '\0';
            cmd[cl] = '\0';
        }
    }
    for (int i = 1; i < argc; i += 2) { /* --flag value pairs */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        if (!strcmp(a, "--n"))
            n_conv = atoi(v);
        else if (!strcmp(a, "--seed"))
            seed = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--budget"))
            budget = atol(v);
        else if (!strcmp(a, "--keep-last"))
            keep_last = atoi(v);
        else if (!strcmp(a, "--threads"))
            threads = atoi(v);
        else if (!strcmp(a, "--max-tokens"))
            max_tokens = atoi(v);
        else if (!strcmp(a, "--model-dir"))
            eo.model_dir = v;
        else if (!strcmp(a, "--out"))
            out_path = v;
        else if (!strcmp(a, "--long"))
            n_long = atoi(v);
        else if (!strcmp(a, "--embed-max") && atoi(v) >= 1)
            embed_max = (size_t)atoi(v);
        else
            usage();
    }
    if (n_conv < 1 || budget < 1 || keep_last < 0 || max_tokens < 8)
        usage();
    eo.backend = SC_BACKEND_CPU;
    eo.threads = threads;
    eo.max_batch = 64;
    eo.max_tokens = max_tokens;
    sc_encoder_t *enc = NULL;
    if (sc_encoder_new(&eo, &enc, err, sizeof err) != SC_OK) {
        fprintf(stderr, "bench_prune: encoder: %s\n", err);
        return 1;
    }
    rng_state = seed ? seed : 1;
    if (n_long > 0) {
        /* keep what the file holds before this section, replace the section */
        static char kept[1 << 20];
        size_t kl = 0;
        FILE *in = fopen(out_path, "r");
        if (in) {
            kl = fread(kept, 1, sizeof kept - 1, in);
            fclose(in);
        }
        kept[kl] = '\0';
        char *cut = strstr(kept, "\n## Long conversations behind");
        if (cut)
            *cut = '\0';
        FILE *md = fopen(out_path, "w");
        if (!md) {
            fprintf(stderr, "bench_prune: cannot write %s\n", out_path);
            return 1;
        }
        fputs(kept, md);
        int rc = run_long(enc, n_long, seed, budget, keep_last, max_tokens, cmd, md);
        fclose(md);
        sc_encoder_free(enc);
        return rc;
    }

    selector_t sel[BENCH_N_SELECT];
    memset(sel, 0, sizeof sel);
    for (int s = 0; s < BENCH_N_SELECT; s++)
        sc_prune_opts_default(&sel[s].opts);
    sel[0].name = "**default**: hybrid score (cosine with last user turn + 0.15 x previous turn, + "
                  "0.25 x rare-term overlap), relevance floor mean + 1 std";
    sel[0].use_vecs = 1;
    sel[1].name = "hybrid score, no floor: fill the budget";
    sel[1].use_vecs = 1;
    sel[1].opts.fill_budget = 1;
    sel[2].name = "cosine only (last user turn), relevance floor";
    sel[2].use_vecs = 1;
    sel[2].opts.lexical_weight = 0;
    sel[2].opts.prev_turn_weight = 0;
    sel[3].name = "rare-term overlap only (no embeddings), relevance floor";
    sel[3].use_vecs = 0;
    sel[4].name = "recency window (no relevance): newest middle turns that fit";
    sel[4].use_vecs = 0;
    sel[4].recency = 1;
    sel[4].opts.lexical_weight = 0;
    if (getenv("BENCH_PREV_W"))
        for (int s = 0; s < 2; s++)
            sel[s].opts.prev_turn_weight = (float)atof(getenv("BENCH_PREV_W"));
    if (getenv("BENCH_Z"))
        for (int s = 0; s < 4; s++)
            sel[s].opts.relevance_z = atof(getenv("BENCH_Z"));

    sc_limits_t lim;
    sc_limits_default(&lim);
    long total_turns = 0, embedded_turns = 0;
    double embed_s = 0, plan_s = 0;
    long plans = 0;
    for (int c = 0; c < n_conv; c++) {
        int n = BENCH_MIN_TURNS + rng_int(0, BENCH_MAX_TURNS - BENCH_MIN_TURNS);
        n |= 1; /* odd: starts and ends with the user */
        if (n > BENCH_MAX_TURNS)
            n -= 2;
        int planted = 0;
        char *js = make_conversation(c, n, &planted);
        sc_request_t *req = NULL;
        char idb[64];
        if (sc_request_parse(js, strlen(js), &lim, &req, idb, sizeof idb, err, sizeof err) !=
            SC_OK) {
            fprintf(stderr, "bench_prune: generated request invalid: %s\n", err);
            return 1;
        }
        float *vecs = malloc((size_t)n * SC_EMBED_DIM * sizeof(float));
        long *tok = malloc((size_t)n * sizeof(long));
        long sys_tok = 0;
        if (embed_turns(enc, req, keep_last, vecs, tok, &sys_tok, &embed_s, &embedded_turns) != 0)
            return 1;
        total_turns += n;
        int b = bucket_of(n);
        for (int s = 0; s < BENCH_N_SELECT; s++) {
            sc_prune_plan_t plan;
            selector_t *x = &sel[s];
            float *v = x->use_vecs ? vecs : NULL;
            int64_t p0 = sc_now_us();
            sc_status_t st;
            if (x->recency) {
                /* a conventional sliding window: keep the newest turns that fit */
                st =
                    sc_prune_plan_opts(req, tok, sys_tok, NULL, budget, keep_last, &x->opts, &plan);
                if (st == SC_OK && plan.pruned) {
                    long room = budget - plan.summary_reserve - sys_tok;
                    size_t i;
                    for (i = plan.protected_from; i < (size_t)n; i++)
                        room -= tok[i];
                    memset(plan.keep, 0, plan.protected_from);
                    for (i = plan.protected_from; i-- > 0 && tok[i] <= room;) {
                        plan.keep[i] = 1; /* a window: stops at the first turn that does not fit */
                        room -= tok[i];
                    }
                    plan.kept_tokens = sys_tok;
                    for (i = 0; i < (size_t)n; i++)
                        plan.kept_tokens += plan.keep[i] ? tok[i] : 0;
                }
            } else {
                st = sc_prune_plan_opts(req, tok, sys_tok, v, budget, keep_last, &x->opts, &plan);
            }
            if (s == 0) {
                plan_s += (double)(sc_now_us() - p0) / 1e6;
                plans++;
            }
            if (st != SC_OK) {
                fprintf(stderr, "bench_prune: plan: %s\n", sc_strerror(st));
                return 1;
            }
            double before = (double)plan.original_tokens;
            double after = plan.pruned ? (double)(plan.kept_tokens + plan.summary_reserve) : before;
            x->before += before;
            x->after += after;
            x->b_before[b] += before;
            x->b_after[b] += after;
            x->b_n[b]++;
            x->pruned_convs += plan.pruned;
            x->b_pruned[b] += plan.pruned;
            if (getenv("BENCH_PRUNE_DEBUG") && plan.score && s < 3) {
                int rank = 1;
                float best_other = -1, sum = 0;
                for (size_t i = 0; i < plan.protected_from; i++) {
                    sum += plan.score[i];
                    if ((int)i == planted)
                        continue;
                    rank += plan.score[i] > plan.score[planted];
                    if (plan.score[i] > best_other)
                        best_other = plan.score[i];
                }
                fprintf(stderr,
                        "conv %d sel %d n %d planted %d score %.3f rank %d best_other %.3f mean "
                        "%.3f kept %d\n",
                        c, s, n, planted, plan.score[planted], rank, best_other,
                        sum / (float)plan.protected_from, plan.keep[planted]);
            }
            if (plan.keep[planted]) {
                x->kept++;
                x->b_kept[b]++;
            }
            sc_prune_plan_clear(&plan);
        }
        free(vecs);
        free(tok);
        free(js);
        sc_request_free(req);
        if ((c + 1) % 10 == 0)
            fprintf(stderr, "bench_prune: %d/%d conversations\n", c + 1, n_conv);
    }

    /* ---- report ---- */
    char cpu[256], date[64], host[128] = "";
    sc_bench_cpu_model(cpu, sizeof cpu);
    gethostname(host, sizeof host - 1);
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    FILE *f = fopen(out_path, "w");
    if (!f) {
        fprintf(stderr, "bench_prune: cannot write %s\n", out_path);
        return 1;
    }
    FILE *outs[2] = {stdout, f};
    for (int o = 0; o < 2; o++) {
        FILE *w = outs[o];
        fprintf(w, "# Context pruning benchmark\n\n");
        fprintf(w, "- machine: %s, %ld cores online\n- date: %s\n- command: `%s`\n", cpu,
                sysconf(_SC_NPROCESSORS_ONLN), date, cmd);
        fprintf(w,
                "- workload: %d generated agent conversations (seed %lu), %d-%d turns (mean "
                "%.1f), domains support/sales/SQL/HR/ops; one fact planted in a random earlier "
                "user turn (never in the last 4), the last user turn asks about it\n",
                n_conv, seed, BENCH_MIN_TURNS, BENCH_MAX_TURNS, (double)total_turns / n_conv);
        fprintf(w,
                "- budget %ld tokens, keep_last %d, summary reserve %d%% (%ld tokens, counted in "
                "\"after\" for every pruned conversation); tokens by `sc_tokens_base` "
                "(uncalibrated); embeddings: all-MiniLM-L6-v2 on the CPU, first %d WordPiece "
                "tokens of each turn, at most %d turns of a conversation (%ld of %ld turns, "
                "%.1f s); planning %.2f ms per conversation\n\n",
                budget, keep_last, SC_PRUNE_SUMMARY_RESERVE_PCT,
                budget * SC_PRUNE_SUMMARY_RESERVE_PCT / 100, PRUNE_TOKENS(max_tokens), (int)embed_max,
                embedded_turns, total_turns, embed_s,
                plans ? plan_s * 1e3 / (double)plans : 0.0);
        fprintf(w, "| selector | mean tokens before | mean tokens after | reduction | planted "
                   "turn kept |\n|---|---:|---:|---:|---:|\n");
        for (int s = 0; s < BENCH_N_SELECT; s++) {
            selector_t *x = &sel[s];
            fprintf(w, "| %s | %.0f | %.0f | %.1f%% | %.1f%% (%ld/%d) |\n", x->name,
                    x->before / n_conv, x->after / n_conv, 100.0 * (1.0 - x->after / x->before),
                    100.0 * (double)x->kept / n_conv, x->kept, n_conv);
        }
        fprintf(w, "\nBy conversation length (default selector):\n\n| turns | conversations | "
                   "pruned | mean before | mean after | reduction | planted kept |\n"
                   "|---|---:|---:|---:|---:|---:|---:|\n");
        for (int b = 0; b < BENCH_N_BUCKETS; b++) {
            selector_t *x = &sel[0];
            if (!x->b_n[b])
                continue;
            fprintf(w, "| %s | %ld | %ld | %.0f | %.0f | %.1f%% | %.1f%% |\n", bucket_names[b],
                    x->b_n[b], x->b_pruned[b], x->b_before[b] / (double)x->b_n[b],
                    x->b_after[b] / (double)x->b_n[b],
                    100.0 * (1.0 - x->b_after[b] / x->b_before[b]),
                    100.0 * (double)x->b_kept[b] / (double)x->b_n[b]);
        }
        fprintf(w,
                "\nReduction = 1 - (sum of tokens after) / (sum of tokens before) over all "
                "conversations, so conversations that already fit count with 0%%. "
                "\"Planted turn kept\" = the user turn holding the fact is sent verbatim. "
                "Targets (issue): reduction >= 60%%, planted kept >= 90%%. Pruned "
                "conversations (default): %ld/%d.\n",
                sel[0].pruned_convs, n_conv);
    }
    fclose(f);
    sc_encoder_free(enc);
    return 0;
}
