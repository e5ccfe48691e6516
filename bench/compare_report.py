#!/usr/bin/env python3
"""The table of bench/compare.sh: medians per case and tool, ratios to rsync,
the issue's targets, and (with --doc) the same block in docs/benchmarks.md
between the compare:begin / compare:end markers of "Orbit vs rsync and cp"."""
import argparse
import datetime
import os
import platform
import statistics

BEGIN = "<!-- compare:begin -->"
END = "<!-- compare:end -->"
SECTION = "## Orbit vs rsync and cp"
MIB = 1024 * 1024
RSS_LIMIT_KIB = 64 * 1024

CASES = [
    ("tree-copy", "full tree copy, 6.1.187 into an empty destination"),
    ("tree-sync", "tree sync, 6.1.192 over that copy"),
    ("tar-copy", "copy of the 6.1.187 .tar"),
    ("tar-sync", "sync of the 6.1.192 .tar over it"),
    ("resume", "resume: rerun after the star was SIGKILLed at half the .tar"),
]
TOOLS = ["cp", "rsync", "rsync-fsync", "orbit-local", "orbit-star",
         "orbit-star-z"]
ORBITS = ("orbit-local", "orbit-star", "orbit-star-z")
TOOL_LABEL = {
    "cp": "`cp -a`",
    "rsync": "`rsync -a` → daemon",
    "rsync-fsync": "`rsync -a --fsync` → daemon",
    "orbit-local": "`orbit` → local",
    "orbit-star": "`orbit` → orbit-star",
    "orbit-star-z": "`orbit --compress zstd` → orbit-star",
}


def num(v):
    return None if v in ("-", "", None) else float(v)


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def load(path):
    rows = {}
    with open(path) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) < 10:
                continue
            case, tool = p[0], p[1]
            r = rows.setdefault((case, tool), [])
            r.append({"wall": num(p[3]), "rss_c": num(p[4]), "rss_s": num(p[5]),
                      "cpu_c": num(p[6]), "cpu_s": num(p[7]), "sent": num(p[8]),
                      "raw": num(p[9].split("|")[0]),
                      "raw_h": p[9].split("|")[1] if "|" in p[9] else "",
                      "wire": num(p[10]) if len(p) > 10 else None})
    return rows


def summary(runs):
    out = {k: med([r[k] for r in runs]) for k in runs[0] if k != "raw_h"}
    # the human figure of the median run (orbit prints chunk bytes rounded)
    raws = sorted(runs, key=lambda r: r["raw"] or 0)
    out["raw_h"] = raws[(len(raws) - 1) // 2]["raw_h"]
    out["n"] = len(runs)
    # memory: the worst run, not the median
    for k in ("rss_c", "rss_s"):
        vals = [r[k] for r in runs if r[k] is not None]
        out[k] = max(vals) if vals else None
    walls = [r["wall"] for r in runs]
    out["spread"] = (min(walls), max(walls))
    return out


def fmt(v, spec, dash="–"):
    return dash if v is None else format(v, spec)


def read_info(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read().split("\t")


def build(a):
    rows = load(a.results)
    s = {k: summary(v) for k, v in rows.items()}
    tree = read_info(os.path.join(a.scratch, "tree.info"))
    resume = read_info(os.path.join(a.scratch, "resume.info"))
    out = []
    w = out.append
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    w(f"Measured {when} on a shared 2-core VM ({platform.machine()}, "
      f"{os.cpu_count()} CPUs, other engineers' builds and tests running"
      + (" — 1-minute load average {} at the start, {} at the end".format(
          *a.load.split()) if len(a.load.split()) == 2 else "") + "), "
      f"warm page cache, one filesystem for sources and destinations; "
      f"{a.orbit_version}" + (f" at {a.commit}" if a.commit else "") +
      f" (Release), {' '.join(a.rsync_version.split()[:3])}. Command:")
    w("")
    w("```sh")
    w(a.command.strip())
    w("```")
    w("")
    if tree:
        w(f"Tree: linux-source {a.old} → {a.new}, {int(tree[1]):,} files "
          f"({int(tree[3]) / MIB:,.0f} MiB), {int(tree[2]):,} of them changed or "
          f"gone in {a.new}. Wall time is the median of {a.tree_runs} run(s) for "
          f"the tree and of {a.runs} for the .tar (min–max in brackets when "
          f"more than one); RSS is the worst run; CPU is user+sys.")
        w("")
    w("| case | tool | wall s | × rsync | sent MiB | × rsync | both ways MiB | × rsync "
      "| RSS source MiB | RSS dest MiB | CPU source s | CPU dest s |")
    w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
      "| ---: |")
    for case, title in CASES:
        ref = s.get((case, "rsync"))
        first = True
        for tool in TOOLS:
            x = s.get((case, tool))
            if not x:
                continue
            wall = f"{x['wall']:.2f}"
            if x["n"] > 1:
                wall += f" ({x['spread'][0]:.1f}–{x['spread'][1]:.1f})"
            rw = fmt(x["wall"] / ref["wall"], ".2f") if ref and ref["wall"] else "–"
            sent = fmt(x["sent"] / MIB if x["sent"] is not None else None, ",.1f")
            if x["raw"] is not None and x["sent"] is not None and \
                    tool.startswith("orbit") and x["raw_h"] and \
                    abs(x["raw"] - x["sent"]) > 0.1 * x["sent"]:
                sent += f" ({x['raw_h']} raw)"
            rb = "–"
            if ref and ref["sent"] and x["sent"] is not None:
                rb = f"{x['sent'] / ref['sent']:.3f}"
            wire = fmt(x["wire"] / MIB if x["wire"] is not None else None, ",.1f")
            rwire = "–"
            if ref and ref["wire"] and x["wire"] is not None:
                rwire = f"{x['wire'] / ref['wire']:.3f}"
            dest_rss = x["rss_s"]
            dest = fmt(dest_rss / 1024 if dest_rss else None, ".1f",
                       "(in-process)" if tool == "orbit-local" else "–")
            w(f"| {title if first else ''}"
              f" | {TOOL_LABEL[tool]} | {wall} | {rw} | {sent} | {rb} "
              f"| {wire} | {rwire} "
              f"| {fmt(x['rss_c'] / 1024 if x['rss_c'] else None, '.1f')} | {dest} "
              f"| {fmt(x['cpu_c'], '.1f')} | {fmt(x['cpu_s'], '.1f')} |")
            first = False
    w("")

    # targets
    w("Targets (issue 6). `--compress auto`, the default, sends raw chunks to a "
      "star on this host, as here; `--compress zstd` is what it sends a star on "
      "another host:")
    w("")

    def met(ok):
        return "**met**" if ok else "**not met**"

    tc = s.get(("tree-copy", "rsync"))
    for tool in ORBITS:
        x = s.get(("tree-copy", tool))
        if tc and x:
            w(f"- full tree copy faster than rsync, {TOOL_LABEL[tool]}: "
              f"{x['wall']:.1f} s vs {tc['wall']:.1f} s "
              f"(×{x['wall'] / tc['wall']:.2f}) — {met(x['wall'] < tc['wall'])}")
    ts = s.get(("tree-sync", "rsync"))
    for tool in ORBITS:
        x = s.get(("tree-sync", tool))
        if ts and x:
            ok_t = x["wall"] <= ts["wall"] / 4
            ok_b = x["sent"] is not None and ts["sent"] is not None and x["sent"] <= ts["sent"]
            line = (f"- tree sync ≤ ¼ of rsync's time and no more bytes, {TOOL_LABEL[tool]}: "
                    f"{x['wall']:.1f} s vs {ts['wall']:.1f} s (×{x['wall'] / ts['wall']:.2f}) "
                    f"— {met(ok_t)}; chunk payload {x['sent'] / MIB:,.1f} MiB vs "
                    f"{ts['sent'] / MIB:,.1f} MiB — {met(ok_b)}")
            if x["wire"] is not None and ts["wire"]:
                line += (f"; all traffic both ways {x['wire'] / MIB:,.1f} MiB vs "
                         f"{ts['wire'] / MIB:,.1f} MiB — {met(x['wire'] <= ts['wire'])}")
            w(line)
    r = s.get(("resume", "orbit-star"))
    if r and resume:
        size, held, rc1, bw = float(resume[1]), float(resume[2]), resume[3], resume[4]
        run1, ref = float(resume[5]), float(resume[6])
        resent = run1 + r["sent"] - ref
        w(f"- resume re-sends < 5 % of the file: the first run (`--bwlimit {bw}`) "
          f"was cut when the star, SIGKILLed, held {held / size * 100:.0f} % of the "
          f"{size / MIB:,.0f} MiB .tar under `.orbit` (the source then retried "
          f"until interrupted, exit {rc1}); it had sent {run1 / MIB:,.1f} MiB. "
          f"The rerun of the same command sent {r['sent'] / MIB:,.1f} MiB "
          f"({r['raw_h']} of chunks before zstd, "
          f"{r['raw'] / size * 100:.0f} % of the file) in {r['wall']:.1f} s. "
          f"One uninterrupted copy sends {ref / MIB:,.1f} MiB, so the two runs "
          f"together re-sent {resent / MIB:,.1f} MiB = "
          f"{resent / size * 100:.2f} % of the file "
          f"({resent / ref * 100:.2f} % of a full copy's bytes) — "
          f"{met(resent / size < 0.05)}")
    src_rss = [v["rss_c"] for (c, t), v in s.items() if t.startswith("orbit-star") and v["rss_c"]]
    star_rss = [v["rss_s"] for (c, t), v in s.items() if t.startswith("orbit-star") and v["rss_s"]]
    loc_rss = [v["rss_c"] for (c, t), v in s.items() if t == "orbit-local" and v["rss_c"]]
    if src_rss and star_rss:
        w(f"- peak RSS < 64 MiB: source {max(src_rss) / 1024:.1f} MiB "
          f"— {met(max(src_rss) < RSS_LIMIT_KIB)}; orbit-star "
          f"{max(star_rss) / 1024:.1f} MiB — {met(max(star_rss) < RSS_LIMIT_KIB)}"
          + (f" (local destination, source and in-process star in one process: "
             f"{max(loc_rss) / 1024:.1f} MiB)" if loc_rss else ""))
    return out


def write_doc(path, block):
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    body = BEGIN + "\n" + "\n".join(block).rstrip() + "\n" + END
    if BEGIN in text and END in text:
        pre, rest = text.split(BEGIN, 1)
        post = rest.split(END, 1)[1]
        text = pre + body + post
    else:
        if SECTION not in text:
            text = text.rstrip("\n") + "\n\n" + SECTION + "\n\n"
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    with open(path, "w") as f:
        f.write(text)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--results", required=True)
    p.add_argument("--scratch", required=True)
    p.add_argument("--runs", default="3")
    p.add_argument("--tree-runs", default="1")
    p.add_argument("--old", default="")
    p.add_argument("--new", default="")
    p.add_argument("--command", default="bench/compare.sh")
    p.add_argument("--orbit-version", default="orbit")
    p.add_argument("--rsync-version", default="rsync")
    p.add_argument("--commit", default="")
    p.add_argument("--load", default="")
    p.add_argument("--doc")
    a = p.parse_args()
    block = build(a)
    print("\n".join(block))
    if a.doc:
        write_doc(a.doc, block)
        print(f"\n(written to {a.doc})")


if __name__ == "__main__":
    main()
