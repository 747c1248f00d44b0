"""Single-shot and short-conversation content for examples/make_requests.py.

Lists of strings are independent requests. Lists of lists are paraphrase groups: the first
entry is the original question, the others reword it (same tenant, same agent and stage), which
is what the semantic cache layer should catch.
"""

# ---- acme ----

ACME_TICKETS = [
    "Subject: internet down since last night\n\nMy AX3000 has a blinking red light and nothing connects. I've restarted it three times. I work from home and have a client call at 10. Please help ASAP.",
    "Subject: charged twice\n\nHello, I bought the Mesh 3-pack on your website on 2 May and my credit card shows two charges of 279.99. Order number AC-448120. Please refund one of them.",
    "Subject: Where is my order??\n\nOrdered a Link 16 switch 9 days ago, tracking hasn't updated since it left the warehouse. Order AC-450031.",
    "Subject: router smells hot\n\nThere's a burning plastic smell coming from my Beacon AX5400 Pro and the case is very hot to touch on the left side. I unplugged it. Is it safe to use?",
    "Subject: app won't let me log in\n\nThe Acme Home app keeps saying 'session expired' every time I open it, even right after logging in. iPhone 14, iOS 17.5.",
    "Subject: guest network\n\nHow do I set up a guest network that can't see my printer? I have the AX3000.",
    "Subject: Firmware update bricked my router\n\nI updated the AX3000 firmware from the app last night and now the power light is on but nothing else. No Wi-Fi at all. This is the second time your updates have broken something. I want a replacement shipped today or I'm disputing the charge with my bank.",
    "Subject: return\n\nI'd like to return the Mesh 2-pack, it doesn't cover my house and I'll get something else. Bought 3 weeks ago, still have the box.",
    "Subject: slow speeds on 5GHz\n\nI pay for 500 Mbps but only get about 90 on 5 GHz near the router, 480 when I plug in a cable. Beacon AX3000, firmware 3.4.2.",
    "Subject: Question about Wi-Fi 6E\n\nDoes the AX5400 Pro support 6 GHz with a Pixel 7? And do I need to do anything to turn it on?",
    "Subject: Change email on account\n\nI no longer use the email on my Acme account. How can I change it to my new one? I can still log in.",
    "Subject: mesh satellite not pairing\n\nBought a single extra Mesh satellite to add to my existing 2-pack. The app finds it but pairing fails at 80% every time.",
    "Subject: Invoice for my company\n\nI need a VAT invoice for order AC-447702 with our company name Meyer & Söhne GmbH and VAT ID DE812345678.",
    "Subject: lights off\n\nCan I turn off the LEDs on the mesh units? They're too bright in the bedroom at night.",
    "Subject: Port forwarding not working\n\nI forwarded port 25565 TCP to 192.168.0.20 for a Minecraft server on the AX3000 but friends can't connect. Worked on my old router.",
    "Subject: speak to a manager\n\nI have been chatting with your bot for an hour. I want a human being, now. My internet drops every 20 minutes.",
    "Subject: Damaged box\n\nThe Link 8 switch arrived with a crushed box and one of the ports is bent inwards. Order AC-451390.",
    "Subject: parental controls schedule\n\nThe bedtime schedule in parental controls doesn't block my son's tablet anymore since last week. It used to work.",
    "Subject: Promo code didn't apply\n\nThe code SPRING15 didn't reduce the price at checkout for the AX5400 Pro, I paid full price. Can you refund the difference?",
    "Subject: static IP\n\nHow can I give my NAS a fixed IP address on the AX3000 so it doesn't change?",
    "Subject: sparks\n\nWhen I plugged the power adapter of my mesh unit into the wall there was a spark and a pop and now it doesn't turn on. The wall socket still works with other things.",
    "Subject: delete my account\n\nPlease delete my Acme account and all data you hold about me under GDPR.",
]

# Support questions; inner lists are paraphrase groups.
ACME_SUPPORT_QUESTIONS = [
    ["How do I reset my Beacon AX3000 to factory settings?",
     "How do I reset my Beacon AX3000 back to its factory settings?",
     "What's the way to factory-reset the AX3000 router?",
     "I need to wipe my Beacon AX3000 back to how it came out of the box, how?"],
    ["My 2.4 GHz smart plugs keep disconnecting from the AX3000. What can I do?",
     "Smart plugs on 2.4GHz drop off my Beacon AX3000 all the time, any fix?"],
    ["How do I update the firmware on my mesh system?",
     "Where do I find firmware updates for the Beacon Mesh?",
     "How can I update the firmware on my mesh system?"],
    ["Can I use the Beacon Mesh with my ISP's router instead of the Acme main unit?",
     "Does Beacon Mesh work if I keep the router my internet provider gave me?"],
    ["How do I set up a guest Wi-Fi network with a separate password?",
     "How can I set up a guest Wi-Fi network that has a separate password?"],
    ["Why is my wired connection limited to 100 Mbps on the Link 8 switch?",
     "My Link 8 only negotiates 100 Mb/s instead of gigabit on one PC, why?"],
    ["How long is the warranty on the AX5400 Pro and how do I claim it?",
     "How long is the AX5400 Pro warranty, and how do I claim it?"],
    ["Is it possible to schedule the Wi-Fi to turn off at night?",
     "Can the router switch Wi-Fi off automatically overnight?"],
    ["How do I enable WPA3 on the AX5400 Pro, and will my older devices still connect?"],
    ["What does a pulsing amber light on a mesh satellite mean?"],
]

ACME_SALES_BRIEFS = [
    "Write a first email to Laura Chen, office manager at Chen & Patel Dental (12 staff, two treatment rooms, patients complain the waiting-room Wi-Fi is unusable). Offer the Starter bundle. Rep: Marco.",
    "Follow-up email to Daniel Okafor, owner of Okafor Architects (30 staff). He attended our webinar last Tuesday about office networks and asked about installation downtime. Installation by our partner usually takes half a day and can be done on a Saturday. Growth bundle. Rep: Sara.",
    "Reply to a prospect, Hannah Weiss of Weiss Bakery Group (3 shops, 8 staff each), who asked whether one Starter bundle can cover all three shops. It cannot: each bundle covers one site. Suggest three Starter bundles and offer a call. Rep: Marco.",
    "Short email to re-engage a lead that went quiet: Ahmed Siddiqui, IT lead at Brightwell Accountancy (22 staff), last contact 6 weeks ago, he was comparing us with buying hardware outright. Rep: Sara.",
    "Email to Inés Romero, operations director at a coworking space with 35 desks, who asked if the Growth bundle supports a separate network per tenant company. The AX5400 Pro supports up to 8 SSIDs with VLAN tagging, so yes for up to 8 companies. Rep: Marco.",
]

ACME_EXTRACT = [
    "Hi, it's Jan de Vries (jan.devries@example.nl). Order AC-449210 arrived but the mesh unit in the box is a single one, I ordered the 3-pack. Phone +31 6 1234 5678.",
    "Order number is AC-450876, my email is priya.s@example.com. The router's power adapter is missing from the box.",
    "hello my name is Tomasz, tomasz.k@example.pl, i got order AC-447315 but the ethernet cable is broken at the connector",
    "Re: your reply. Yes the order was AC-451002 and it went to my work address. Contact me at r.hughes@example.co.uk please, not the gmail one.",
    "I never received my Link 16. Order no. AC-446998. Email: oliviamartin@example.fr. Tracking says delivered but nothing at my door.",
    "Hi Acme, Chiara Bianchi here, chiara.bianchi@example.it. Order AC-452117: the AX3000 box was opened and resealed, looks used.",
]

ACME_EXTRACT_SYSTEM = "Extract from the customer message: customer_name (string or null), email (string or null), order_number (string matching AC-###### or null), issue (one of: missing_item, damaged_item, wrong_item, not_delivered, other). Return a JSON object with exactly these keys."

# ---- globex ----

GLOBEX_DIFFS = [
    """Review this migration, it ships with tomorrow's release:

```sql
ALTER TABLE wh.orders ADD COLUMN fulfilment_center text NOT NULL DEFAULT 'DUB1';
CREATE INDEX orders_fc_idx ON wh.orders (fulfilment_center);
UPDATE wh.orders SET fulfilment_center = s.warehouse FROM wh.shipments s WHERE s.order_id = orders.order_id;
```

wh.orders has about 410 million rows.""",
    """Review please:

```python
def load_events(conn, since):
    cur = conn.cursor()
    cur.execute(f"SELECT event_id, payload FROM events WHERE created_at > '{since}'")
    rows = cur.fetchall()
    out = []
    for r in rows:
        out.append(json.loads(r[1]))
    return out
```

It's called hourly by the reconciliation job with `since` coming from the job's last checkpoint.""",
    """Review this Kafka consumer loop:

```go
for {
    msg, err := c.ReadMessage(-1)
    if err != nil {
        log.Println(err)
        continue
    }
    go func() {
        if err := handle(msg); err != nil {
            log.Printf("handle: %v", err)
        }
    }()
    c.CommitMessage(msg)
}
```""",
    """Is this retry helper OK? We use it for calls to the payments provider.

```go
func withRetry(ctx context.Context, f func() error) error {
    var err error
    for i := 0; i < 10; i++ {
        if err = f(); err == nil {
            return nil
        }
        time.Sleep(time.Duration(i) * 100 * time.Millisecond)
    }
    return err
}
```

Used like `withRetry(ctx, func() error { return payments.Charge(ctx, orderID, amount) })`.""",
    """Small one:

```go
func (s *Server) handleGetOrder(w http.ResponseWriter, r *http.Request) {
    id := r.URL.Query().Get("id")
    o, err := s.db.GetOrder(r.Context(), id)
    if err != nil {
        http.Error(w, err.Error(), 500)
        return
    }
    log.Printf("order fetched: %+v", o)
    json.NewEncoder(w).Encode(o)
}
```""",
    """Please review this cache we put in front of the product service:

```go
type ProductCache struct {
    mu    sync.Mutex
    items map[string]Product
}

func (c *ProductCache) Get(ctx context.Context, sku string) (Product, error) {
    c.mu.Lock()
    defer c.mu.Unlock()
    if p, ok := c.items[sku]; ok {
        return p, nil
    }
    p, err := c.client.FetchProduct(ctx, sku)
    if err != nil {
        return Product{}, err
    }
    c.items[sku] = p
    return p, nil
}
```

Product data changes a few times a day; the service handles ~4k requests per second.""",
]

GLOBEX_EXPLAIN_SNIPPETS = [
    """What does this do and why the `select` with `default`?

```go
func (p *Publisher) TryPublish(ev Event) bool {
    select {
    case p.ch <- ev:
        return true
    default:
        p.dropped.Add(1)
        return false
    }
}
```""",
    """Explain this query, especially the `FILTER` and why it isn't a WHERE:

```sql
SELECT date_trunc('week', opened_at) AS week,
       count(*) AS opened,
       count(*) FILTER (WHERE closed_at IS NOT NULL) AS closed,
       avg(csat) FILTER (WHERE csat IS NOT NULL) AS avg_csat
FROM wh.support_tickets
GROUP BY 1;
```""",
    """I inherited this Python and don't get the `yield` part:

```python
def batched(rows, n):
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch
```""",
    """Why would someone write `errors.Is(err, context.Canceled)` here instead of `err == context.Canceled`?

```go
if err := s.process(ctx, job); err != nil {
    if errors.Is(err, context.Canceled) {
        return nil
    }
    return fmt.Errorf("process job %d: %w", job.ID, err)
}
```""",
]

GLOBEX_SQL_QUESTIONS = [
    ["Top 10 customers by 2024 revenue in USD, with their segment and country.",
     "Which ten customers brought in the most money in 2024 (in USD)? Include segment and country."],
    ["Average delivery time in days per carrier for shipments delivered in Q1 2025.",
     "For Q1 2025, how many days on average did each carrier take from shipping to delivery?"],
    ["Share of orders cancelled per month in 2024, as a percentage."],
    ["Customers who placed an order in every month of 2024."],
    ["Products launched in 2024 that have sold fewer than 100 units so far.",
     "Which SKUs launched during 2024 have under 100 units sold in total?"],
    ["Median CSAT per ticket category for tickets closed in the last 90 days."],
    ["For each warehouse, the percentage of shipments delivered within 3 days of shipping in 2024."],
    ["Cohort retention: for customers grouped by the month of their first order in 2024, what share ordered again in each of the following 6 months?"],
    ["Revenue per SKU category in 2024, net of line discounts, in the order currency, no FX conversion."],
]

# ---- initech ----

INITECH_HR_QUESTIONS = [
    ["How many PTO days do I get per year?",
     "What's my annual vacation allowance?",
     "how many days of paid time off do full-timers get a year"],
    ["Can I carry over unused vacation days into next year?",
     "What happens to PTO I don't use by December?"],
    ["I'm adopting a child. Do I get parental leave?",
     "Does parental leave apply to adoptive parents?"],
    ["Do I need a doctor's note if I'm sick for two days?"],
    ["Can I use sick days to look after my kid when she has the flu?",
     "My daughter is ill, can I take sick leave to care for her?"],
    ["I want to work from Portugal for three weeks in July. Is that allowed?",
     "Can I work remotely from abroad for a few weeks this summer?"],
    ["What's the daily meal allowance when I travel for work?"],
    ["Can I book business class for a 9-hour flight to Singapore?"],
    ["What is the learning budget and what can I spend it on?",
     "How much can I spend on courses and conferences each year?"],
    ["Which days do hybrid employees have to be in the office?"],
    ["I'm a new remote hire. Is there a home office allowance?"],
    ["Do floating holidays carry over if I don't use them?"],
]

INITECH_IT_QUESTIONS = [
    ["How do I connect to the VPN from home?",
     "What are the steps to get on GlobalProtect when working remotely?"],
    ["I got a new phone. How do I move Okta Verify to it?",
     "New phone, how do I set up MFA again?"],
    ["Outlook keeps asking for my password every few minutes."],
    ["My laptop says BitLocker recovery key needed after a BIOS update."],
    ["How do I share a big file (4 GB) with an external client?"],
    ["Can I install Python on my laptop for a data course?"],
]

# ---- umbrella ----

UMBRELLA_SCREENING = [
    ("Does this message contain personal health information about an identifiable person?",
     "Hi Markus, attached is the updated site activation timeline for the Berlin and Leipzig sites. We expect first patient in by 15 September. Best, Elena"),
    ("Does this message contain personal health information about an identifiable person?",
     "Hi team, subject 104-022 (Mr. J. Alvarez, DOB 03/11/1961) had a grade 3 liver enzyme elevation on day 14; please see the attached lab report before tomorrow's call."),
    ("Does this message contain personal health information about an identifiable person?",
     "Quick update: enrolment at the Lyon site is at 18 of 25. Two screen failures this week, both due to eGFR below the cutoff."),
    ("Does this message share unpublished efficacy results?",
     "Dear partners, we are pleased to share that the interim analysis of UMB-2207 showed a 34% reduction in the primary endpoint versus placebo. Please keep this confidential until our press release next month."),
    ("Does this message share unpublished efficacy results?",
     "Please find attached the final protocol amendment v4.1 and the updated informed consent form for submission to your ethics committee."),
    ("Does this message make a promotional claim about an unapproved use of a product?",
     "As you know, our compound works wonderfully for migraine too, even though it's only approved for epilepsy. Your neurologists might want to try it."),
    ("Does this message make a promotional claim about an unapproved use of a product?",
     "Reminder: the investigator meeting is on 12 June in Amsterdam. Travel bookings go through our agency; reply with your dates by Friday."),
    ("Does this message contain personal health information about an identifiable person?",
     "The photo from the Madrid site shows the participant's face and wristband with her hospital number, could you blur it before we use it in the newsletter?"),
    ("Does this message include payment terms or amounts?",
     "Per the agreement, site fees of EUR 4,200 per completed subject will be paid quarterly within 45 days of invoice."),
    ("Does this message include payment terms or amounts?",
     "Thanks for hosting us last week, the tour of the pharmacy and the discussion of storage logistics were very helpful."),
    ("Does this message share unpublished efficacy results?",
     "Attached is the poster we presented at ASCO last week, which is now publicly available on the congress website."),
    ("Does this message contain personal health information about an identifiable person?",
     "Aggregate safety table: 12 grade 1 and 3 grade 2 injection-site reactions across all arms, no grade 3 or higher events."),
]

UMBRELLA_ABSTRACTS = [
    "Summarise: In a retrospective cohort of 12,480 adults with type 2 diabetes from two US health systems, initiation of an SGLT2 inhibitor was associated with a lower incidence of hospitalisation for heart failure compared with DPP-4 inhibitor initiation (adjusted hazard ratio 0.69, 95% CI 0.58 to 0.82) over a median follow-up of 2.3 years. Propensity score matching was used. Residual confounding cannot be excluded.",
    "Summarise this conference abstract and tell me whether it supports moving the compound into a rodent efficacy study: UMB-3341, a selective NLRP3 inhibitor, reduced IL-1beta release from LPS-primed human monocyte-derived macrophages with an IC50 of 18 nM (n = 3 donors). At 1 micromolar no cytotoxicity was observed by LDH release. Microsomal stability in human liver microsomes: t1/2 = 42 min.",
    "Summarise: This phase 1 first-in-human study enrolled 48 healthy volunteers in 6 single ascending dose cohorts (8 per cohort, 6 active : 2 placebo). UMB-1187 was well tolerated up to 400 mg; the most common adverse event was mild headache (5 of 36 active vs 1 of 12 placebo). Exposure increased slightly more than dose-proportionally between 200 and 400 mg. Terminal half-life was 19 to 23 hours, supporting once-daily dosing.",
    "Summarise and list what's missing for a meta-analysis: A randomised trial in 412 patients with moderate to severe plaque psoriasis compared a twice-daily topical PDE4 inhibitor with vehicle for 8 weeks. At week 8, 32% vs 11% achieved PASI 75. Pruritus improved more in the active arm. Application-site burning occurred in 6% of active patients.",
]

UMBRELLA_SQL_QUESTIONS = [
    ["Enrolment versus target per site for trial UMB-2207, with the percentage reached."],
    ["Number of serious adverse events per trial and severity grade, only events considered related."],
    ["Sites activated more than 90 days ago that have enrolled fewer than 3 subjects.",
     "Which sites have been active for over three months but enrolled under three subjects?"],
    ["Monthly enrolments per country for all phase 3 trials in 2024."],
    ["Withdrawal rate per arm for trial UMB-2207."],
]

# ---- hooli ----

HOOLI_TICKETS = [
    ["Our HKE cluster in eu-west-2 has been returning 502 from the ingress for all services since 14:05 UTC. Nothing changed on our side.",
     "Since around 14:05 UTC every service behind our ingress in eu-west-2 is giving 502s. No deploys from us."],
    ["We're hitting the limit of 50 load balancers per project and need 120 for a migration next week."],
    ["Our invoice for April is 3x what it was in March and I don't see why. Account hooli-acct-88412."],
    ["How do I mount a HOS bucket into a pod as a volume?"],
    ["Function cold starts went from ~300ms to 4s since yesterday for all our Node 20 functions in us-east-1."],
    ["A former employee still has access to our org in the console, how do we remove him? He's not in our IdP anymore."],
    ["It would be great if HKE supported in-place pod resize without restarts, it's in Kubernetes 1.27 alpha."],
    ["Someone is hosting a phishing page on one of your object store public URLs: https://pub-7f3a.hos.hooli.example/login.html"],
    ["kubectl commands are very slow (5-10s each) against our cluster's API server, pods seem fine."],
    ["Can I get a copy of our invoices for all of 2024 as PDFs?"],
    ["I was charged twice this month for the same subscription."],
    ["Please raise the GPU quota for project ml-prod to 16 A100s in us-central-1."],
]

HOOLI_SUPPORT_QUESTIONS = [
    ["How do I enable workload identity so a pod can read a HOS bucket without static keys?"],
    ["What's the recommended way to do blue/green deployments on HKE?"],
    ["Our HOS bucket has 40 million small objects and listing is slow. Any tips?",
     "Listing a bucket with tens of millions of tiny objects takes forever on HOS, what should we do?"],
]

HOOLI_REVIEWS = [
    """```python
@app.route("/download")
def download():
    name = request.args.get("file")
    return send_file(os.path.join("/srv/reports", name))
```""",
    """```js
app.post('/api/login', async (req, res) => {
  const user = await db.query(`SELECT * FROM users WHERE email = '${req.body.email}'`);
  if (user && user.password === req.body.password) {
    res.cookie('session', user.id);
    return res.json({ ok: true });
  }
  res.status(401).json({ ok: false, error: 'user not found' });
});
```""",
    """```go
func hash(password string) string {
    h := md5.Sum([]byte(password))
    return hex.EncodeToString(h[:])
}
```""",
    """```python
def apply_discount(price, pct):
    return price - price * pct / 100

total = sum(apply_discount(item.price, item.discount) for item in cart)
print("Total: %.2f" % total)
```
Prices are floats in dollars.""",
]

HOOLI_SALES_BRIEFS = [
    "Email to Marcus Lee, CTO at Fieldnote (a 60-person analytics startup currently on another cloud). They complained publicly about egress fees. Hooli Object Store has no egress fees to the internet up to 10 TB per month. Propose a cost comparison. Rep: Jenna.",
    "Thank-you email after a demo with the platform team at Vantage Health (8 attendees). They asked for HIPAA documentation and a sandbox. We can provide a BAA and a 30-day sandbox. Rep: Jenna.",
]

HOOLI_HR_QUESTIONS = [
    "How many weeks of parental leave do I get as a non-birth parent?",
    "Do I need a doctor's note if I'm sick for two days?",
]

# ---- learning coach (initech and hooli use the same tutor: identical requests in two tenants) ----

TUTOR_PROBLEMS = [
    "A train leaves at 9:40 and travels 210 km at an average of 84 km/h. A second train leaves the same station 25 minutes later on the same track and averages 105 km/h. Does the second train catch up before the first arrives? If so, when and where?",
    "Explain why the sum 1 + 1/2 + 1/3 + 1/4 + ... diverges, with a proof a first-year student can follow.",
    "We roll two fair six-sided dice. Given that at least one die shows a 6, what is the probability that both show a 6?",
    "A loan of 250,000 at 4.2% annual interest, compounded monthly, is repaid over 25 years with equal monthly payments. What is the monthly payment, and how much interest is paid in total?",
    "Prove that for every integer n >= 1, 1^3 + 2^3 + ... + n^3 = (1 + 2 + ... + n)^2.",
    "A service handles requests with an average of 120 per second, and each takes on average 40 ms of a worker's time. Using Little's law, how many requests are in service on average, and how many workers do we need to keep utilisation under 70%?",
]

# Long, hard tasks that call for the strong model: (tenant, agent, stage, system key, content).
HARD_TASKS = [
    ("globex", "code-assistant", "design", "GLOBEX_CODE_REVIEW",
     "We need exactly-once processing of payment events from Kafka into PostgreSQL. Events carry a payment_id and a version. Consumers may crash at any point, and the same event may be delivered twice or out of order. Design the consumer: the table layout, the transaction boundaries, how offsets are committed, and what happens at each crash point. Include the SQL for the upsert and the Go code for the loop."),
    ("globex", "analytics-agent", "sql", "GLOBEX_SQL",
     "For each customer, find the longest streak of consecutive calendar months with at least one paid, shipped or delivered order between January 2022 and December 2024. Return customer_id, streak length, and the first and last month of the streak; if a customer has several equally long streaks, return the earliest. Explain the gaps-and-islands technique you use."),
    ("hooli", "code-assistant", "review", "HOOLI_CODE_REVIEW",
     "Write a Go function that merges k sorted slices of int64 into one sorted slice using a min-heap from container/heap. Then analyse its time and memory complexity, compare it with repeatedly merging pairs, and write table-driven tests that cover empty inputs, duplicates and slices of very different lengths."),
    ("umbrella", "research-assistant", "summarize", "UMBRELLA_RESEARCH",
     "We are planning a two-arm trial with a time-to-event primary endpoint. We expect a hazard ratio of 0.75, a control-arm event rate of 20% over 3 years, 2-sided alpha 0.05, 90% power, uniform accrual over 2 years, 1 additional year of follow-up, and 5% loss to follow-up per year. Walk through the Schoenfeld calculation for the required number of events and then estimate the total sample size, stating every assumption."),
    ("acme", "sales-copilot", "forecast", "ACME_SALES",
     "Our pipeline has 42 open Starter deals (89 USD per month) and 17 open Growth deals (169 USD per month). Historically 28% of Starter and 19% of Growth deals close, the average time to close is 46 days, and churn is 1.8% of customers per month. We currently have 310 Starter and 95 Growth customers. Estimate monthly recurring revenue at the end of each of the next 6 months, explain the model step by step, and say which assumption the result is most sensitive to."),
    ("initech", "learning-coach", "explain", "GENERIC_TUTOR",
     "Prove that there are infinitely many primes of the form 4k + 3. Then explain why the same argument does not directly work for primes of the form 4k + 1, and sketch how one can prove that case instead."),
]
