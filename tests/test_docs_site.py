"""The documentation site, built offline and looked at in a real browser.

Builds the site with `scripts/build_docs.py --no-quarto` (nbdev processing + smalldocs) into a temporary
folder, opens every page in headless Chromium (Debian's `chromium`, installed with apt when missing),
saves a screenshot of each into `_site_screenshots/` and checks what each page must show: its title,
the API of its module (every exported function and class with its signature and docments), the
equations of the theory page typeset by MathJax, the figures and tables a notebook's saved outputs
hold, and sidebar links that resolve. Pages are parametrized over the notebooks that exist, and the
core ones must exist, so the test never passes on an empty site.
"""

import ast
import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
SHOTS = ROOT / "_site_screenshots"
CORE = ["api/00_core", "api/01_models", "api/02_data", "api/03_scoring", "api/04_selection", "api/05_training"]  # must always be there
RESULTS = tuple(f"studies/{n}" for n in ("01_ground_truth", "02_controlled", "03_gsm8k_corrupted", "04_real_pool",
                                         "06_performance", "07_reliability"))  # pages whose point is their figures and tables
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,900",
         "--hide-scrollbars", "--virtual-time-budget=8000"]


def notebooks() -> list[str]:
    "The site's notebooks, as paths from nbs/ without the suffix, such as `03_scoring` or `tutorials/colab`."
    return sorted(p.relative_to(NBS).with_suffix("").as_posix() for p in NBS.rglob("*.ipynb")
                  if not any(part.startswith(("_", ".")) for part in p.relative_to(NBS).parts))


def nb_json(name: str) -> dict:
    return json.loads((NBS / f"{name}.ipynb").read_text(encoding="utf-8"))


def nb_title(name: str) -> str:
    "The title nbdev gives the page: the notebook's first `# ` heading, or its front matter title."
    for c in nb_json(name)["cells"]:
        src = "".join(c["source"])
        if c["cell_type"] == "raw" and (m := re.search(r"^title:\s*['\"]?(.+?)['\"]?\s*$", src, re.M)):
            return m.group(1)
        if c["cell_type"] == "markdown" and (m := re.search(r"^#\s+(.+)$", src, re.M)):
            return m.group(1)
    return ""


def plain(s: str) -> str:
    "Text without markdown marks and with collapsed whitespace, for comparing a source with a page."
    s = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", s)
    return " ".join(re.sub(r"`|\*\*?", "", s).split())


def dom_text(dom: str) -> str:
    dom = re.sub(r"<(script|style|svg|mjx-container)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    dom = re.sub(r"</?(span|a|code|em|strong|i|b)\b[^>]*>", "", dom)  # inline: no space, so `token_nll(` stays whole
    return plain(html.unescape(re.sub(r"<[^>]+>", " ", dom)))


def module_of(name: str) -> str | None:
    for c in nb_json(name)["cells"]:
        if m := re.search(r"^#\|\s*default_exp\s+(\S+)", "".join(c["source"]), re.M):
            return m.group(1)
    return None


def public_api(module: str) -> dict[str, list[str]]:
    "{name: [docment, ...]} for each function and class that the module exports in `__all__`."
    path = ROOT / "tokenclean" / (module.replace(".", "/") + ".py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    exported = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            exported = set(ast.literal_eval(node.value))
    lines = path.read_text(encoding="utf-8").splitlines()
    api = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in exported:
            docs = []
            if not isinstance(node, ast.ClassDef):  # docments: the comment beside a parameter in the signature
                end = node.body[0].lineno - 1
                for ln in lines[node.lineno - 1:end]:
                    param = ln.split("#", 1)[0].strip().removeprefix("def ").removeprefix(node.name + "(")
                    if "#" in ln and not param.startswith("*") and (doc := ln.split("#", 1)[1].strip()):
                        docs.append(doc)  # show_doc leaves out the docments of *args and **kwargs
            api[node.name] = docs
    return api


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def colours(path: Path) -> int:
    try:
        from PIL import Image
    except ImportError:
        return 256
    with Image.open(path) as im:
        return len(im.convert("RGB").resize((320, 225)).getcolors(1 << 16) or [])


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def chromium() -> str:
    "Debian's chromium, installed with apt when it is missing (CI runs as root)."
    for exe in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(exe):
            return found
    if not shutil.which("apt-get"):
        pytest.skip("no chromium and no apt-get to install it: the docs site is not checked in a browser here")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        r = subprocess.run(sudo + cmd, env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, f"`{' '.join(cmd)}` failed (installing chromium needs root):\n{r.stderr[-2000:]}"
    found = shutil.which("chromium")
    assert found, "apt-get installed chromium but it is not on PATH"
    return found


@pytest.fixture(scope="module")
def build() -> dict:
    "The site, built offline by the script into a temporary folder; notebooks that fail are left out and listed."
    out = Path(tempfile.mkdtemp(prefix="tokenclean-site-")) / "site"
    r = subprocess.run([sys.executable, "scripts/build_docs.py", "--no-quarto", "--keep-going", "--out", str(out), "--json"],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    log = "\n".join(line for line in (r.stdout + r.stderr).splitlines() if line.startswith(("[build_docs]", " ")))
    assert r.returncode == 0, f"scripts/build_docs.py failed:\n{log[-6000:]}\n{r.stderr[-3000:]}"
    yield {**json.loads(r.stdout.strip().splitlines()[-1]), "out": out, "log": log}
    shutil.rmtree(out.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def site(build) -> Path:
    return build["out"]


@pytest.fixture(scope="module")
def browsed(site, chromium, tmp_path_factory) -> dict[str, dict]:
    "Every HTML page of the site, opened in headless Chromium: {page: {png, dom}}."
    profile = tmp_path_factory.mktemp("chromium")
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir()
    pages = sorted(p.relative_to(site).with_suffix("").as_posix() for p in site.rglob("*.html")
                   if "site_libs" not in p.parts)

    def visit(page: str) -> tuple[str, dict]:
        url = (site / f"{page}.html").as_uri()
        png = SHOTS / f"{page.replace('/', '__')}.png"
        user = [f"--user-data-dir={profile / page.replace('/', '__')}"]
        subprocess.run([chromium, *FLAGS, *user, f"--screenshot={png}", url], capture_output=True, timeout=120)
        dom = subprocess.run([chromium, *FLAGS, *user, "--dump-dom", url], capture_output=True, text=True, timeout=120)
        return page, {"png": png, "dom": dom.stdout}

    with ThreadPoolExecutor(2) as ex:
        res = dict(ex.map(visit, pages))
    (SHOTS / "README.txt").write_text(f"Screenshots of the offline docs site ({len(res)} pages), made by tests/test_docs_site.py.\n")
    return res


# ---------------------------------------------------------------- tests


def test_every_notebook_processes(build):
    "nbdev's docs processing (which runs every cell holding an import, an export or show_doc) works on each notebook."
    assert not build["failed"], "notebooks that nbdev's docs processing could not run (keep imports in cells of " \
        f"their own):\n{build['log'][-5000:]}"


def test_core_pages_exist(site, browsed, capsys):
    "The site is never empty: the core notebooks are there and became pages."
    missing = [n for n in CORE if not (NBS / f"{n}.ipynb").exists()]
    assert not missing, f"core notebooks missing from nbs/: {missing}"
    for n in CORE:
        assert (site / f"{n}.html").exists(), f"{n}.html was not built"
    assert len(browsed) >= len(CORE)
    with capsys.disabled():
        print(f"\n[test_docs_site] {len(browsed)} pages built; screenshots in {SHOTS}/")


@pytest.mark.parametrize("name", notebooks())
def test_page_renders(name, site, browsed):
    "Each notebook is a page that a browser draws: a real screenshot, and the title in the DOM."
    assert name in browsed, f"no page for nbs/{name}.ipynb in the site (did nbdev's docs processing fail on it?)"
    png, dom = browsed[name]["png"], browsed[name]["dom"]
    assert png.exists(), f"chromium wrote no screenshot of {name}"
    w, h = png_size(png.read_bytes())
    assert (w, h) == (1280, 900), (w, h)
    assert png.stat().st_size > 15_000 and colours(png) > 30, f"{png} looks blank"
    assert "<body" in dom and "quarto-sidebar" in dom, f"{name}: the DOM lacks the page layout"
    title = plain(nb_title(name))
    assert title and title in dom_text(dom), f"{name}: title {title!r} not in the rendered page"


@pytest.mark.parametrize("name", [n for n in notebooks() if module_of(n) not in (None, "__main__")])
def test_module_page_shows_api(name, browsed):
    "A module's page shows every exported function and class with its signature and docments."
    dom = browsed[name]["dom"] if name in browsed else pytest.fail(f"no page for {name}")
    text = dom_text(dom)
    api = public_api(module_of(name))
    assert api, f"{name}: module {module_of(name)} exports no function or class"
    for fn, docs in api.items():
        assert re.search(rf"<h[2-4][^>]*>\s*{re.escape(fn)}\s*(<a |</h[2-4]>)", dom), f"{name}: no API heading for {fn}"
        assert f"{fn}(" in text, f"{name}: no signature for {fn}"
        for d in docs:
            key = plain(d.split("`")[0])[:40].strip()
            if len(key) >= 8:
                assert key in text, f"{name}: docment of {fn} missing: {key!r}"


def test_scoring_page_shows_token_nll(browsed):
    "The example from the issue: the scoring page shows `token_nll` with its typed signature."
    text = dom_text(browsed["api/03_scoring"]["dom"])
    assert re.search(r"def token_nll\( model, input_ids, attention_mask, labels,.*?\)\s*->\s*torch\.Tensor", text), \
        "token_nll's signature is not on the scoring page"


def test_theory_equations(browsed, site):
    "The theory page holds its equations as LaTeX in the HTML and typeset by MathJax in the browser."
    name = "theory/theory"
    src = "\n".join("".join(c["source"]) for c in nb_json(name)["cells"] if c["cell_type"] == "markdown")
    n_src = len(re.findall(r"\$\$.+?\$\$|\$[^$\n]+?\$", src, re.S))
    assert n_src >= 10, f"the theory notebook has only {n_src} equations"
    raw = (site / f"{name}.html").read_text(encoding="utf-8")
    assert raw.count('class="math') >= 0.9 * n_src, "equations lost between the notebook and the HTML"
    assert "site_libs/mathjax/" in raw, "the page does not load the local MathJax"
    dom = browsed[name]["dom"]
    typeset = dom.count("<mjx-container")
    assert typeset >= 0.9 * n_src, f"MathJax typeset {typeset} of {n_src} equations"
    errors = re.findall(r'data-mjx-error="([^"]*)"', dom)
    assert not errors, f"MathJax could not typeset {len(errors)} equation(s): {errors[:5]}"


@pytest.mark.parametrize("name", notebooks())
def test_figures_and_tables(name, site, browsed):
    "A notebook's saved figures and tables reach its page; the results pages must have some."
    if name not in browsed:
        pytest.fail(f"no page for {name}")
    cells = nb_json(name)["cells"]
    n_img = sum(1 for c in cells for o in c.get("outputs", []) if any(k.startswith("image/") for k in o.get("data", {})))
    has_table = any(c["cell_type"] == "markdown" and re.search(r"^\s*\|?\s*:?-{3,}:?\s*\|", "".join(c["source"]), re.M)
                    for c in cells) or any("<table" in "".join(o.get("data", {}).get("text/html", []))
                                           for c in cells for o in c.get("outputs", []))
    dom = browsed[name]["dom"]
    shown = len(re.findall(r"<img\b", dom)) + len(re.findall(r"<svg\b", dom)) - dom.count("<mjx-container")
    assert shown >= n_img, f"{name}: {n_img} saved figures but {shown} images on the page"
    if has_table:
        assert "<table" in dom, f"{name}: the notebook has a table, the page none"
    if name in RESULTS:
        assert n_img or has_table, f"{name}: a results page with no saved figure or table (run it and keep the outputs)"


def test_local_links_resolve(site):
    "Every relative link of every page (sidebar, doc links) points at a file of the site."
    bad = []
    for page in site.rglob("*.html"):
        if "site_libs" in page.parts:
            continue
        for href in re.findall(r'href="([^"#?]+)', page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", href) or href.startswith("//"):
                continue
            if not (page.parent / href).exists():
                bad.append(f"{page.relative_to(site)} -> {href}")
    assert not bad, "broken links:\n" + "\n".join(sorted(set(bad))[:30])


QUIET = ("api/00_core", "api/01_models", "api/08_export", "tutorials/one_gpu", "index")  # named, so a rename fails


def test_stderr_blocks(site, capsys):
    "No third-party bars or warnings on the quiet pages; every page's count of stderr blocks is printed."
    sys.path.insert(0, str(ROOT / "scripts"))
    from count_outputs import site_counts
    counts = dict(site_counts(site))
    with capsys.disabled():
        busy = {p: n for p, n in counts.items() if n}
        print(f"\n[test_docs_site] {sum(counts.values())} stderr blocks on {len(busy)} of {len(counts)} pages: {busy}")
    quiet = {n: counts[f"{n}.html"] for n in QUIET if f"{n}.html" in counts}
    assert len(quiet) == len(QUIET) and not any(quiet.values()), quiet
    assert not busy, f"stderr blocks on the site: {busy}"
