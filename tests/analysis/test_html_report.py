"""report/index.html: the summary and the outputs browser, opened from disk in a real headless Chromium.

The browser is Debian's ``chromium`` driven through ``chromium-driver`` by Selenium (``.ci/run`` installs
them; docs/development.md says how to run these tests). Without them the browser tests are skipped, with
the reason; the page's escaping is also checked without a browser.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import compose_cfg

from degrade.analysis.browse import first_difference, script_json, write_page
from degrade.analysis.report import write_report
from degrade.job.runner import run_job

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
HOSTILE = '</script><script>window.pwned=1</script><img src=x onerror="window.pwned=2"><!-- & "q" \u2028'
PROMPTS = (
    'experiment.prompts=[{id:m1,text:"What is 2 plus 2?",category:math,answers:["4"]},'
    '{id:l1,text:"The opposite of hot?",category:language,answers:["cold"]},'
    '{id:f1,text:"Tell me a story."}]'
)


def test_the_payload_cannot_close_its_script_element() -> None:
    data = {"output": HOSTILE, "nested": [HOSTILE]}
    text = script_json(data)
    assert not set("<>&") & set(text), text
    assert json.loads(text) == data


@pytest.mark.parametrize(
    ("output", "clean", "index"),
    [("a b c", "a b c", -1), ("a x c", "a b c", 1), ("a b", "a b c", 2), ("a b c d", "a b c", 3), ("z", "a", 0)],
)
def test_first_differing_word(output: str, clean: str, index: int) -> None:
    assert first_difference(output, clean) == index


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the dev extra)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A real tiny-model job (sampling, three levels, two repetitions), one output made hostile, and its report."""
    root = tmp_path_factory.mktemp("html")
    cfg = compose_cfg(
        "model=tiny_random",
        "experiment=iq",
        PROMPTS,
        "experiment.n_rep=2",
        "degradation.levels=[0,0.5,2]",
        "generation=sampling",
        "generation.max_new_tokens=6",
    )
    run_job(cfg, root / "job")
    journal = root / "job" / "records.jsonl"
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    hostile = next(r for r in lines if r["prompt_id"] == "f1" and r["level_value"] == 2 and r["repeat_index"] == 1)
    hostile["output"] = HOSTILE
    journal.write_text("".join(json.dumps(r) + "\n" for r in lines))
    (root / "job" / "records.parquet").unlink()  # the views are rebuilt from the journal on the next read
    write_report(root / "job", root / "report")
    return root / "report"


def open_page(driver, page: Path) -> float:
    start = time.perf_counter()
    driver.get(page.resolve().as_uri())
    while driver.execute_script("return document.body.dataset.ready") != "1":
        time.sleep(0.01)
    return time.perf_counter() - start


def choose(driver, select_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", select_id)).select_by_value(value)


def shown(driver, part: str = ".output") -> dict[tuple[float, int], str | None]:
    """What the grid shows: {(level, repetition): text of ``part`` in that cell}, read from the page."""
    cells = driver.execute_script(
        "return [...document.querySelectorAll('#grid td[data-record]')].map(td => "
        "[Number(td.parentElement.dataset.level), td.cellIndex - 1, "
        "td.querySelector(arguments[0])?.textContent ?? null])",
        part,
    )
    repeats = driver.execute_script(
        "return [...document.querySelectorAll('#grid tr:first-child th')].slice(1).map(th => th.textContent)"
    )
    return {(level, int(repeats[col].split()[-1])): text for level, col, text in cells}


def test_the_outputs_shown_are_the_records(browser, report) -> None:
    records = pd.read_parquet(report / "all_records.parquet")
    open_page(browser, report / "index.html")
    browser.find_element("id", "tab-outputs").click()
    for prompt in ("m1", "f1"):
        choose(browser, "prompt", prompt)
        want = records[records.prompt_id == prompt]
        expected = {(float(r.level_value), int(r.repeat_index)): r.output for r in want.itertuples()}
        assert shown(browser) == expected
        assert browser.find_element("id", "prompt-text").text == want.prompt_text.iloc[0]


def test_a_hostile_output_shows_as_text_and_runs_nothing(browser, report) -> None:
    page = (report / "index.html").read_text()
    assert HOSTILE not in page and "window.pwned" in page  # escaped inside the payload, not raw markup
    open_page(browser, report / "index.html")
    browser.find_element("id", "tab-outputs").click()
    choose(browser, "prompt", "f1")
    assert shown(browser)[(2.0, 1)] == HOSTILE
    assert browser.execute_script("return window.pwned") is None
    assert browser.execute_script("return document.querySelectorAll('#grid img, #grid script').length") == 0
    # Nothing fetched: the policy forbids it, and the page asked for nothing.
    assert "default-src 'none'" in browser.find_element("css selector", "meta[http-equiv]").get_attribute("content")
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0


def test_filters_and_search_narrow_the_records(browser, report) -> None:
    records = pd.read_parquet(report / "all_records.parquet")
    open_page(browser, report / "index.html")
    browser.find_element("id", "tab-outputs").click()
    count = lambda: int(re.match(r"(\d+) records", browser.find_element("id", "count").text).group(1))  # noqa: E731
    assert count() == len(records)
    choose(browser, "category", "math")
    assert count() == int((records.prompt_category == "math").sum())
    choose(browser, "category", "")
    word = max(" ".join(records.output).split(), key=len).lower()
    box = browser.find_element("id", "search")
    box.send_keys(word)
    assert count() == int(records.output.str.lower().str.contains(word, regex=False).sum())
    box.clear()
    browser.execute_script("document.getElementById('search').dispatchEvent(new Event('input'))")
    choose(browser, "correct", "0")
    assert count() == int((records.correct == 0).sum())


def test_the_first_word_that_differs_from_clean_is_marked(browser, report) -> None:
    records = pd.read_parquet(report / "all_records.parquet")
    open_page(browser, report / "index.html")
    browser.find_element("id", "tab-outputs").click()
    choose(browser, "prompt", "m1")
    marks = shown(browser, "mark")
    m1 = records[records.prompt_id == "m1"]
    clean = {r.repeat_index: r.output.split() for r in m1[m1.level_value == 0].itertuples()}
    for r in m1.itertuples():
        words, index = r.output.split(), first_difference(r.output, " ".join(clean[r.repeat_index]))
        assert marks[(float(r.level_value), r.repeat_index)] == (words[index] if 0 <= index < len(words) else None)
    assert any(marks.values()), "no damaged output differs from its clean one: the test checks nothing"


@pytest.mark.slow
def test_the_study_size_report_loads_and_filters(browser, tmp_path) -> None:
    """38 prompts × 5 variants × 10 levels × 10 repetitions = 19,000 records: load and filter times printed."""
    rows = [
        {
            "job_dir": f"variant={v}",
            "experiment": "dreams",
            "model_name": "m",
            "degradation_method": "mult_gauss",
            "param_group_name": v,
            "prompt_id": f"d{p:02d}",
            "prompt_text": f"Dream {p}",
            "prompt_category": None,
            "finish_reason": "length" if (p + r) % 3 else "stop",
            "level_value": level / 10,
            "repeat_index": r,
            "output": " ".join(f"word{(p * 7 + r + i * (level + 1)) % 500}" for i in range(300)),
            "correct": None,
            "tokens_out": 300,
        }
        for v in ("attn", "mlp", "embed", "abl", "quant")
        for p in range(38)
        for level in range(10)
        for r in range(10)
    ]
    df = pd.DataFrame(rows)
    page = write_page(df, tmp_path, summary=df.head(0), stats_md=None, settings={}, warnings=[], figures=[])
    load = open_page(browser, page)
    browser.find_element("id", "tab-outputs").click()
    start = time.perf_counter()
    browser.find_element("id", "search").send_keys("word499")
    text = browser.find_element("id", "count").text
    search = time.perf_counter() - start
    want = sum(
        "word499" in r["output"].split() and r["param_group_name"] == "abl" for r in rows
    )  # the first method shown
    assert text.startswith(f"{want} records match"), text
    print(f"19,000 records, {page.stat().st_size / 1e6:.1f} MB: load {load:.2f} s, search {search:.2f} s")


@pytest.mark.slow
def test_a_sweep_of_the_embedded_model_is_browsed_and_pictured(browser, tmp_path) -> None:
    """A real SmolLM2 sweep (two methods, three levels): the outputs shown are its records; the browser's
    screenshot of the outputs tab is saved under the report, as report/outputs_browser.png."""
    for method in ("mult_gauss", "ablation"):
        levels = "degradation.levels=[0,0.1,0.3]" if method == "mult_gauss" else "degradation.levels=[0,0.2,0.5]"
        args = ("experiment=dreams", "experiment.limit=3", "generation.max_new_tokens=40")
        run_job(compose_cfg(f"degradation={method}", *args, levels), tmp_path / "sweep" / method)
    report = tmp_path / "sweep" / "report"
    write_report(tmp_path / "sweep", report)
    records = pd.read_parquet(report / "all_records.parquet")
    open_page(browser, report / "index.html")
    browser.find_element("id", "tab-outputs").click()
    prompt = sorted(records.prompt_id)[0]
    choose(browser, "prompt", prompt)
    want = records[(records.prompt_id == prompt) & (records.degradation_method == "ablation")]
    assert shown(browser) == {(float(r.level_value), int(r.repeat_index)): r.output for r in want.itertuples()}
    picture = report / "outputs_browser.png"
    assert browser.save_screenshot(str(picture))
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 10_000
    print(f"screenshot: {picture}")
