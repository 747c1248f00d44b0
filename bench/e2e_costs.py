#!/usr/bin/env python3
"""e2e_costs.py - where the money goes in a bench_e2e run: cost per request kind and agent in the
all-off baseline and in the `all` run, the share of the baseline that thought tokens make, and the
bound that the families scrimp cannot move to a cheaper tier put on the total saving.

usage: bench/e2e_costs.py WORKDIR [--scrimp PATH] [-o OUT.md]
  WORKDIR   a folder kept by `bench/bench_e2e.sh --configs baseline,all --keep` (or any run with
            both configurations); its truth.jsonl, baseline/results.tsv and all/results.tsv
  --scrimp  the scrimp binary whose `config dump` gives the prices (default build/scrimp)
Prints Markdown (to OUT.md with -o)."""
import argparse
import re
import collections
import json
import os
import subprocess
import sys
import time

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("workdir")
ap.add_argument("--scrimp", default=os.path.join(os.path.dirname(__file__), "..", "build", "scrimp"))
ap.add_argument("-o", dest="out")
a = ap.parse_args()


def load(cfg):
    res = {}
    path = os.path.join(a.workdir, cfg, "results.tsv")
    for line in open(path, encoding="utf-8"):
        _, j = line.split("\t", 1)
        r = json.loads(j)
        res[r["id"]] = r
    return res


truth = {}
for line in open(os.path.join(a.workdir, "truth.jsonl"), encoding="utf-8"):
    t = json.loads(line)
    truth[t["id"]] = t
base, allr = load("baseline"), load("all")
dump = json.loads(subprocess.run([a.scrimp, "config", "dump"], check=True, capture_output=True,
                                 text=True).stdout)
prices = dump["prices"]


def family(t):
    k = t["kind"]
    if k == "routing" or "strong_correct" in t:
        return "MMLU"
    if k == "mtbench":
        return "MT-Bench"
    if k == "longconv":
        return "long conversations"
    return "agent traffic"


def thought_cost(r):
    u = r.get("usage") or {}
    p = prices.get(r.get("model") or "", {})
    return (u.get("thought_tokens") or 0) * p.get("output", 0) / 1e6


rows = collections.defaultdict(lambda: {"n": 0, "base": 0.0, "all": 0.0, "think": 0.0, "weak": 0,
                                        "hits": 0})
fams = collections.defaultdict(lambda: {"n": 0, "base": 0.0, "all": 0.0, "think": 0.0})
for i, t in truth.items():
    b, r = base.get(i), allr.get(i)
    if not b or not r:
        continue
    for key, d in (((t["kind"], t["agent"]), rows), (family(t), fams)):
        g = d[key]
        g["n"] += 1
        g["base"] += b["cost_usd"]
        g["all"] += r["cost_usd"]
        g["think"] += thought_cost(b)
        if d is rows:
            g["weak"] += r.get("source") == "llm" and "pro" not in (r.get("model") or "")
            g["hits"] += r.get("source") != "llm"
tot_base = sum(g["base"] for g in fams.values())
tot_all = sum(g["all"] for g in fams.values())
tot_think = sum(g["think"] for g in fams.values())
shadow = 0.0
sp = os.path.join(a.workdir, "all", "shadow.jsonl")
if os.path.exists(sp):
    for line in open(sp, encoding="utf-8"):
        try:
            shadow += json.loads(line).get("cost_usd", 0)
        except ValueError:
            pass

out = []
w = out.append
w("# Where the cost of the end-to-end workload goes")
w("")
w(f"Command: `bench/bench_e2e.sh --configs baseline,all --keep`, then `bench/e2e_costs.py WORKDIR` "
  f"(prices from `scrimp config dump`). Workload: "
  f"`{re.sub(r' -> [^,;]*', '', open(os.path.join(a.workdir, 'workload.txt')).read().strip())[:400]}`; "
  f"the run's results dated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(os.path.getmtime(os.path.join(a.workdir, 'all', 'results.tsv'))))}.")
w("")
w(f"Baseline (every technique off) ${tot_base:.4f}; `all` (the defaults) ${tot_all:.4f} in results "
  f"plus ${shadow:.4f} of shadow calls: {100 * (1 - (tot_all + shadow) / tot_base):.1f}% saved. "
  f"Thought tokens make ${tot_think:.4f} of the baseline ({100 * tot_think / tot_base:.1f}%): the strong "
  "model thinks before each answer, and only a cache hit or a cheaper tier avoids that.")
w("")
w("## Per family")
w("")
w("| family | requests | baseline $ | share of baseline | of it thought tokens | all $ | saved |")
w("|---|---:|---:|---:|---:|---:|---:|")
for f, g in sorted(fams.items(), key=lambda x: -x[1]["base"]):
    w(f"| {f} | {g['n']} | {g['base']:.4f} | {100 * g['base'] / tot_base:.1f}% | "
      f"{100 * g['think'] / g['base']:.1f}% | {g['all']:.4f} | {100 * (1 - g['all'] / g['base']):.1f}% |")
w("")
w("## Per request kind and agent")
w("")
w("| kind | agent | requests | baseline $ | all $ | saved | answered by a cheaper tier | cache hits |")
w("|---|---|---:|---:|---:|---:|---:|---:|")
for (k, ag), g in sorted(rows.items(), key=lambda x: -x[1]["base"]):
    w(f"| {k} | {ag} | {g['n']} | {g['base']:.4f} | {g['all']:.4f} | "
      f"{100 * (1 - g['all'] / g['base']):.1f}% | {g['weak']} | {g['hits']} |")
w("")
agent = fams.get("agent traffic", {"base": 0.0, "all": 0.0})
need = 0.5 * tot_base - shadow
rest_base = tot_base - agent["base"]
w("## What a 50% cut would take")
w("")
w(f"- Half the baseline is ${0.5 * tot_base:.4f}. Agent traffic alone costs ${agent['all']:.4f} in `all`.")
w(f"- Even if agent traffic kept its cost in `all`, the other families (baseline ${rest_base:.4f}) "
  f"would have to fall to ${max(0.0, need - agent['all']):.4f}: "
  f"{100 * (1 - max(0.0, need - agent['all']) / rest_base):.1f}% below their baseline.")
spec = ""
lp = os.path.join(a.workdir, "all", "sim.log")
if os.path.exists(lp):
    m = re.search(r'quality="([^"]*)"', open(lp, encoding="utf-8", errors="replace").read())
    spec = m.group(1) if m else ""
caps = dict(kv.split("=", 1) for kv in spec.split(",") if "=" in kv)
if all(k in caps for k in ("lite", "cheap", "strong")):
    lite, cheap, strong = (float(caps[k]) for k in ("lite", "cheap", "strong"))
    w(f"- In the simulator's world of this run (`--quality {spec}`), a prompt outside the truth "
      f"table has a uniform difficulty and a tier is right when its capability reaches it, so on "
      f"agent traffic a cheaper tier keeps {lite / strong:.2f} (flash-lite) or {cheap / strong:.2f} "
      f"(flash) of the strong tier's quality, whatever the scope: shadow evaluation rightly "
      f"finds no scope there that may go below strong, and the cache, prompt caching and "
      f"pruning are all that can cut it.")
w("")
text = "\n".join(out) + "\n"
if a.out:
    open(a.out, "w", encoding="utf-8").write(text)
else:
    sys.stdout.write(text)
