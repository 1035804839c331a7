#!/usr/bin/env python
"""Build the documentation site, with Quarto when it is installed and offline without it.

    .venv/bin/python scripts/build_docs.py [--out _site] [--force] [--no-quarto] [--n-workers 2]

With `quarto` on PATH this runs nbdev's own docs steps (what `nbdev_docs` does: refresh `_quarto.yml`
and `nbdev.yml`, rebuild the module index, process the notebooks into `_proc/`, `quarto render`).
Without it (Quarto cannot be installed offline) the notebooks are processed by the same nbdev machinery
(`refresh_quarto_yml`, `nbdev_sidebar`, `proc_nbs` -> `_proc/`, which executes the import, export and
`show_doc` cells so every exported symbol gets its signature and docments) and rendered by the
pure-Python `smalldocs` into self-contained HTML. On top of smalldocs' output this script:

- drops sidebar entries whose notebook does not exist yet and appends notebooks the sidebar misses;
- points nbdev's absolute doc links (`{site-url}/scoring.html#token_nll`, named after each notebook's
  `output-file`) at the local pages, so the offline site links to itself;
- renders maths with a local MathJax 3 (`tex-svg-full.js`, no fonts or network needed) taken from the
  PyPI package `django-static-mathjax` (installed, cached in `.cache/mathjax/`, or fetched once with
  `pip download`); with none to be had it leaves smalldocs' KaTeX tags (a CDN, so maths renders only
  online) and says so. The raw LaTeX is in the page either way.
"""

import argparse
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from contextlib import contextmanager
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MATHJAX_PKG, MATHJAX_VER = "django-static-mathjax", "3.2.2.1"  # MathJax 3.2.2, Apache-2.0, no dependencies
MATHJAX_FILE = "tex-svg-full.js"  # one file: TeX input with every extension, SVG output, no font files
MATHJAX_IN_PKG = f"mathjax/static/mathjax/es5/{MATHJAX_FILE}"
ICON_URL_TEXT = re.compile(r'(<i class="bi bi-[\w-]+" role="img"></i>) <span class="menu-text">https?://[^<]*</span>')  # Quarto shows an icon alone
KATEX_TAG = re.compile(r'<link[^>]*katex[^>]*>\s*|<script[^>]*katex[^>]*>\s*</script>\s*', re.I)
QUIET_WARNINGS = ("output-file is not read", "keep-md is ignored", "format commonmark is not built")


def say(*a):
    print("[build_docs]", *a, flush=True)


@contextmanager
def build_lock():
    "One build at a time per checkout: `_proc/` is nbdev's shared cache."
    key = hashlib.sha1(str(ROOT).encode()).hexdigest()[:12]
    with open(Path(tempfile.gettempdir()) / f"tokenclean-build-docs-{key}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def clear_out(out: Path):
    "Empty the output folder, refusing one that is not a built site."
    out = out.resolve()
    if out in (ROOT, *ROOT.parents, Path.home()) or out in (ROOT / "nbs", ROOT / "tokenclean"):
        sys.exit(f"build_docs: refusing to overwrite {out}")
    if out.exists():
        if any(out.iterdir()) and not (out / "site_libs").is_dir():
            sys.exit(f"build_docs: {out} is not empty and is not a built site; choose another --out")
        shutil.rmtree(out)


# ---------------------------------------------------------------- nbdev processing


def drop_stale(proc: Path, nbs: Path):
    "Remove files from nbdev's `_proc/` cache whose source is gone (proc_nbs only ever adds)."
    for p in list(proc.rglob("*")):
        if p.is_file() and not p.name.startswith(".") and "_docs" not in p.relative_to(proc).parts:
            rel = p.relative_to(proc)
            if not (nbs / rel).exists() and not (nbs / rel.with_suffix(rel.suffix + ".py")).exists() and not (nbs / (str(rel) + ".py")).exists():
                p.unlink()


def proc_nbs_each(n_workers: int, force: bool) -> tuple[Path, dict]:
    """nbdev's `proc_nbs` (nbdev/serve.py), except that one failing notebook does not stop the others.

    Returns the `_proc/` folder and {notebook: error} for the notebooks that failed (left out of `_proc/`)."""
    from fastcore.parallel import parallel
    from nbdev.config import get_config
    from nbdev.doclinks import nbglob
    import nbdev.serve as serve
    import nbdev.serve_drv

    cfg = get_config()
    cache, path = cfg.config_path / "_proc", cfg.nbs_path
    files = nbglob(path, func=Path, file_glob="", file_re="")
    for extra in ("_quarto.yml", "_brand.yml"):
        if (path / extra).exists():
            files.append(path / extra)
    if (path / "_extensions").exists():
        files.extend(nbglob(path / "_extensions", func=Path, file_glob="", file_re="", skip_file_re="^[.]"))
    chk_mtime = max(cfg.config_file.stat().st_mtime, Path(serve.__file__).stat().st_mtime)
    cache.mkdir(parents=True, exist_ok=True)
    if force or cache.stat().st_mtime < chk_mtime:
        shutil.rmtree(cache)
        cache.mkdir(parents=True)
    drop_stale(cache, path)
    todo = files.map(serve._proc_file, mtime=cache.stat().st_mtime, cache=cache, path=path).filter()
    res = parallel(nbdev.serve_drv.main, todo, n_workers=n_workers, pause=0.01, method="spawn", return_exceptions=True)
    failed = {}
    for (src, dst, _), r in zip(todo, res):
        if isinstance(r, BaseException):
            failed[str(Path(src).relative_to(cfg.config_path))] = str(r).strip()
            Path(dst).unlink(missing_ok=True)  # never render a stale or half-written copy
    cache.touch()
    return cache, failed


def process_notebooks(n_workers: int, force: bool, modidx: bool = False) -> tuple[Path, dict]:
    "nbdev's docs preprocessing: `_quarto.yml`/`nbdev.yml`, the sidebar, and the notebooks into `_proc/`."
    from nbdev.quarto import nbdev_sidebar, refresh_quarto_yml

    refresh_quarto_yml()
    if modidx:  # nbdev_docs does this; it rewrites tokenclean/_modidx.py, so the offline build leaves it to nbdev_export
        import nbdev.doclinks

        nbdev.doclinks._build_modidx()
    nbdev_sidebar.__wrapped__()  # a no-op while settings.ini has custom_sidebar = True
    return proc_nbs_each(n_workers, force)


# ---------------------------------------------------------------- the sidebar


def front_matter(nb_path: Path) -> dict:
    "The front matter nbdev put in a processed notebook's first raw cell."
    import yaml

    try:
        cells = json.loads(nb_path.read_text(encoding="utf-8"))["cells"]
    except Exception:
        return {}
    for c in cells[:2]:
        src = "".join(c.get("source", []))
        if c.get("cell_type") == "raw" and src.lstrip().startswith("---"):
            try:
                return yaml.safe_load(src.strip().strip("-")) or {}
            except yaml.YAMLError:
                return {}
    return {}


def prune_sidebar(stage: Path) -> list[str]:
    "Drop the entries of `sidebar.yml` whose page does not exist; append pages it misses. Returns notes."
    import yaml

    sb = stage / "sidebar.yml"
    if not sb.exists():
        return []
    data = yaml.safe_load(sb.read_text()) or {}
    contents = data.get("website", {}).get("sidebar", {}).get("contents", [])
    pages = {p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.suffix in (".ipynb", ".qmd", ".md")
             and not any(part.startswith(("_", ".")) for part in p.relative_to(stage).parts)}
    listed, notes = set(), []

    def keep(items):
        out = []
        for it in items if isinstance(items, list) else [items]:
            if isinstance(it, str):
                hits = {p for p in pages if fnmatch(p, it)} if any(ch in it for ch in "*?[") else ({it} & pages)
                listed.update(hits)
                if hits:
                    out.append(it)
                continue
            if not isinstance(it, dict):
                continue
            if "contents" in it:
                kids = keep(it["contents"])
                if kids:
                    out.append({**it, "contents": kids})
                continue
            href = it.get("href") or it.get("file")
            if href and not re.match(r"^[a-z]+:", str(href)):
                if href in pages:
                    listed.add(href)
                    out.append(it)
                else:
                    notes.append(f"sidebar: {href} is not there (not written yet, or failed to process); left out")
                continue
            out.append(it)
        return out

    new = keep(contents)
    for p in sorted(pages - listed):
        notes.append(f"sidebar: {p} is not in nbs/sidebar.yml; appended at the end (add it there)")
        new.append(p)
    data.setdefault("website", {}).setdefault("sidebar", {})["contents"] = new
    sb.write_text(yaml.safe_dump(data, sort_keys=False))
    return notes


# ---------------------------------------------------------------- maths


def find_mathjax() -> Path | None:
    "A local MathJax 3 `tex-svg-full.js`: installed package, cached copy, or one `pip download` of the wheel."
    spec = importlib.util.find_spec("mathjax")
    if spec and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            p = Path(loc) / "static" / "mathjax" / "es5" / MATHJAX_FILE
            if p.exists():
                return p
    cache = ROOT / ".cache" / "mathjax"
    cached = cache / f"{MATHJAX_VER}-{MATHJAX_FILE}"
    if cached.exists():
        return cached
    if os.environ.get("BUILD_DOCS_NO_DOWNLOAD"):
        return None
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                            f"{MATHJAX_PKG}=={MATHJAX_VER}", "-d", d], capture_output=True, text=True, timeout=300)
        wheels = list(Path(d).glob("*.whl"))
        if r.returncode or not wheels:
            say(f"could not fetch {MATHJAX_PKG} ({r.stderr.strip().splitlines()[-1:] or 'no wheel'})")
            return None
        with zipfile.ZipFile(wheels[0]) as z:
            tmp = cached.with_suffix(".part")
            tmp.write_bytes(z.read(MATHJAX_IN_PKG))
            tmp.replace(cached)
            (cache / "LICENSE").write_bytes(next((z.read(n) for n in z.namelist() if n.endswith("LICENSE")), b"Apache-2.0"))
    return cached


def mathjax_tags(prefix: str) -> str:
    cfg = ("window.MathJax={tex:{inlineMath:[['\\\\(','\\\\)']],displayMath:[['\\\\[','\\\\]'],['$$','$$']],"
           "processEscapes:true},svg:{fontCache:'global'},options:{ignoreHtmlClass:'tex2jax_ignore',"
           "processHtmlClass:'math'}};")
    return (f'<script>{cfg}</script>\n'
            f'<script id="MathJax-script" defer src="{prefix}site_libs/mathjax/{MATHJAX_FILE}"></script>\n')


# ---------------------------------------------------------------- post-processing the HTML


RELATIVE_HTML = re.compile(r'href="([A-Za-z0-9_./-]+\.html)(#[^"]*)?"')


def postprocess(site: Path, stage: Path, site_url: str, mathjax: Path | None) -> dict:
    "Local doc links and local maths. Returns counts."
    # nbdev names each page's URL after its `output-file` (00_core.ipynb -> core.html); smalldocs keeps the
    # notebook's name, so map one to the other for nbdev's absolute links.
    names = {}
    for nb in stage.rglob("*.ipynb"):
        of = front_matter(nb).get("output-file")
        if of:
            rel = nb.relative_to(stage)
            names[(rel.parent / of).as_posix()] = rel.with_suffix(".html").as_posix()
    if mathjax:
        (site / "site_libs" / "mathjax").mkdir(parents=True, exist_ok=True)
        shutil.copy2(mathjax, site / "site_libs" / "mathjax" / MATHJAX_FILE)
        lic = mathjax.parent / "LICENSE"
        if lic.exists():
            shutil.copy2(lic, site / "site_libs" / "mathjax" / "LICENSE")
    base = site_url.rstrip("/") + "/"
    link = re.compile(r'href="' + re.escape(base) + r'([^"#]*)(#[^"]*)?"')
    counts = {"pages": 0, "math_pages": 0, "local_links": 0}
    for page in sorted(site.rglob("*.html")):
        s = page.read_text(encoding="utf-8")
        prefix = "../" * (len(page.relative_to(site).parts) - 1)

        def local(m):
            target = names.get(m.group(1), m.group(1))
            if not (site / target).exists():
                return m.group(0)
            counts["local_links"] += 1
            return f'href="{prefix}{target}{m.group(2) or ""}"'

        s = link.sub(local, s)

        def relative(m):  # a link written for the Quarto site (theory.html) -> this site's page (10_theory.html)
            here = page.parent.relative_to(site)
            target = (here / m.group(1)).as_posix()
            if (site / target).exists() or target not in names: return m.group(0)
            counts["local_links"] += 1
            return f'href="{prefix}{names[target]}{m.group(2) or ""}"'

        s = RELATIVE_HTML.sub(relative, s)
        s = ICON_URL_TEXT.sub(r"\1", s)
        if 'class="math' in s:
            counts["math_pages"] += 1
            if mathjax:
                s = KATEX_TAG.sub("", s)
                s = s.replace("</head>", mathjax_tags(prefix) + "</head>", 1)
        page.write_text(s, encoding="utf-8")
        counts["pages"] += 1
    return counts


# ---------------------------------------------------------------- the two builds


def report_failures(failed: dict):
    for nb, err in failed.items():
        say(f"ERROR: {nb} failed in nbdev's docs processing and is left out of the site.\n"
            f"  nbdev runs every cell holding an import, an export or show_doc; keep imports in cells of their own.\n"
            f"  {err[-1500:]}")


def build_offline(out: Path, n_workers: int, force: bool) -> dict:
    import yaml
    from smalldocs.site import build as sd_build

    t0 = time.time()
    proc, failed = process_notebooks(n_workers, force)
    t1 = time.time()
    say(f"nbdev processed the notebooks into {proc.relative_to(ROOT)}/ in {t1 - t0:.1f}s")
    report_failures(failed)
    stage = Path(tempfile.mkdtemp(prefix="tokenclean-docs-"))
    try:
        shutil.copytree(proc, stage, dirs_exist_ok=True, ignore=shutil.ignore_patterns("_docs", "_site", ".quarto"))
        for note in prune_sidebar(stage):
            say(note)
        site = sd_build(stage, quiet=True)
        for w in site.warnings:
            if not any(q in w for q in QUIET_WARNINGS):
                say(f"smalldocs warning: {w}")
        built = site.out
        meta = {}
        for f in ("nbdev.yml", "_quarto.yml"):
            if (stage / f).exists():
                meta.update((yaml.safe_load((stage / f).read_text()) or {}).get("website", {}))
        mathjax = find_mathjax()
        counts = postprocess(built, stage, str(meta.get("site-url", "")) or "https://invalid.example", mathjax)
        clear_out(out)
        shutil.copytree(built, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    t2 = time.time()
    say(f"smalldocs rendered {counts['pages']} page(s) into {out} in {t2 - t1:.1f}s "
        f"({counts['local_links']} doc links made local)")
    if counts["math_pages"]:
        if mathjax:
            say(f"maths on {counts['math_pages']} page(s): local MathJax 3 ({MATHJAX_PKG} {MATHJAX_VER}) in site_libs/mathjax/")
        else:
            say(f"WARNING: maths on {counts['math_pages']} page(s) uses KaTeX from a CDN (no local MathJax could be had): "
                "it renders only online; the LaTeX source is in the page")
    return {"engine": "smalldocs", "out": str(out), "seconds": round(t2 - t0, 1), "mathjax": bool(mathjax),
            "failed": sorted(failed), **counts}


def build_quarto(out: Path, n_workers: int, force: bool) -> dict:
    "nbdev_docs' steps (without the README), with the sidebar pruned, then `quarto render`."
    from nbdev.config import get_config

    t0 = time.time()
    cfg = get_config()
    proc, failed = process_notebooks(n_workers, force, modidx=True)
    report_failures(failed)
    for note in prune_sidebar(proc):
        say(note)
    subprocess.run(["quarto", "render", "--no-cache"], cwd=proc, check=True)
    built = proc / cfg.doc_path.name
    clear_out(out)
    shutil.move(str(built), str(out))
    say(f"quarto rendered the site into {out} in {time.time() - t0:.1f}s")
    return {"engine": "quarto", "out": str(out), "seconds": round(time.time() - t0, 1), "failed": sorted(failed)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="_site", help="the folder to write the site into (default _site, git-ignored)")
    p.add_argument("--force", action="store_true", help="process every notebook again, ignoring nbdev's _proc cache")
    p.add_argument("--no-quarto", action="store_true", help="use the offline smalldocs build even when quarto is installed")
    p.add_argument("--n-workers", type=int, default=min(2, os.cpu_count() or 1), help="notebooks processed at once")
    p.add_argument("--keep-going", action="store_true", help="exit 0 even when a notebook fails to process (it is left out)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on the last line")
    a = p.parse_args(argv)
    os.chdir(ROOT)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    out = Path(a.out) if Path(a.out).is_absolute() else ROOT / a.out
    with build_lock():
        if shutil.which("quarto") and not a.no_quarto:
            res = build_quarto(out, a.n_workers, a.force)
        else:
            res = build_offline(out, a.n_workers, a.force)
    if a.json:
        print(json.dumps(res))
    if res.get("failed") and not a.keep_going:
        say(f"FAILED: {len(res['failed'])} notebook(s) could not be processed: {', '.join(res['failed'])}")
        sys.exit(1)
    return res


if __name__ == "__main__":
    main()
