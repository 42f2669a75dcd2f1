"""`rft view` driven in a real headless Chromium (Debian's `chromium` and `chromium-driver`, through Selenium)
against a demo-like pipeline folder: the curves render, filtering by status works, a row opens its grade
details, and completions holding HTML/JS show as text and run nothing. One browser for the module."""

from __future__ import annotations

import shutil

import pytest
from _view_folder import HOSTILE, PER_STEP, demo_like_folder

from rft.app.view import make_server, serve_in_thread

webdriver = pytest.importorskip(
    "selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')"
)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="no chromium/chromedriver (apt-get install chromium chromium-driver)",
)
By = pytest.importorskip("selenium.webdriver.common.by").By
WebDriverWait = pytest.importorskip("selenium.webdriver.support.ui").WebDriverWait


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory):
    folder = demo_like_folder(tmp_path_factory.mktemp("viewb"))
    server = make_server(folder, port=0)
    serve_in_thread(server)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=DRIVER))
    driver.set_script_timeout(10)
    try:
        yield driver, server.url
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()


def _open(driver, url: str, tab: str) -> None:
    driver.get("about:blank")  # a fresh page: another hash of the same URL would not reload it
    driver.get(f"{url}#{tab}")
    WebDriverWait(driver, 10).until(lambda d: d.execute_script("return document.body.dataset.ready") == tab)
    error = driver.find_element(By.ID, "error")
    assert not error.is_displayed(), error.text


def _rows(driver) -> list:
    return driver.find_elements(By.CSS_SELECTOR, "#rollouts table.rows tr.row")


def _wait_rows(driver, pred) -> list:
    WebDriverWait(driver, 10).until(lambda d: pred(_rows(d)))
    return _rows(driver)


def test_curves_render_with_stage_boundaries(page):
    driver, url = page
    _open(driver, url, "curves")
    titles = [s.get_attribute("data-title") for s in driver.find_elements(By.CSS_SELECTOR, "svg.chart")]
    assert {"Reward", "Held-out accuracy", "Grader failure rates", "Response length", "Entropy / KL"} <= set(
        titles
    )
    reward = driver.find_element(By.CSS_SELECTOR, 'svg.chart[data-title="Reward"]')
    line = reward.find_element(By.CSS_SELECTOR, 'polyline[data-key="reward/mean"]')
    assert len(line.get_attribute("points").split()) == 4  # one point per logged step
    labels = [
        t.text
        for t in driver.find_elements(
            By.CSS_SELECTOR, 'svg.chart[data-title="Held-out accuracy"] text.stage-label'
        )
    ]
    assert labels == ["sft", "grpo"]


def test_filter_by_status_and_open_a_rows_grade(page):
    driver, url = page
    _open(driver, url, "rollouts")
    rows = _wait_rows(driver, lambda r: len(r) == PER_STEP)  # the last step, by default
    assert driver.find_element(By.ID, "f-step").get_attribute("value") == "4"
    driver.find_element(By.CSS_SELECTOR, "#f-step option[value='all']").click()
    _wait_rows(driver, lambda r: len(r) == 4 * PER_STEP)
    driver.find_element(By.CSS_SELECTOR, "#f-status option[value='timeout']").click()
    rows = _wait_rows(driver, lambda r: len(r) == 4)
    assert {r.find_elements(By.TAG_NAME, "td")[4].text for r in rows} == {"timeout"}
    driver.find_element(By.CSS_SELECTOR, "#f-status option[value='']").click()
    driver.find_element(By.CSS_SELECTOR, "#f-step option[value='2']").click()
    rows = _wait_rows(
        driver,
        lambda r: len(r) == PER_STEP and all(x.find_elements(By.TAG_NAME, "td")[1].text == "2" for x in r),
    )
    rows[3].click()  # the code grade with a failing test
    detail = driver.find_element(By.ID, "detail")
    assert "AssertionError: f(2) == 2" in detail.find_element(By.CSS_SELECTOR, "table.tests").text
    assert "stdout_tail" in detail.text and "tail of stdout" in detail.text
    rows[1].click()  # multi-turn: the turns in order, the tool call, the answer highlighted in the last turn
    detail = driver.find_element(By.ID, "detail")
    roles = [r.text.lower() for r in detail.find_elements(By.CSS_SELECTOR, ".msg .role")]
    assert roles == ["assistant", "tool", "assistant"]
    assert '"python"' in detail.find_element(By.CSS_SELECTOR, ".tool-calls").text
    marks = detail.find_elements(By.CSS_SELECTOR, "mark.extracted")
    assert [m.text for m in marks] == ["33"]
    assert detail.find_element(By.CSS_SELECTOR, "table.grade").text.split("\n")[0] == "status ok"


def test_held_out_failure_filter_and_text_search(page):
    driver, url = page
    _open(driver, url, "rollouts")
    _wait_rows(driver, lambda r: len(r) == PER_STEP)
    driver.find_element(By.CSS_SELECTOR, "#f-step option[value='all']").click()
    _wait_rows(driver, lambda r: len(r) == 4 * PER_STEP)
    driver.find_element(By.ID, "f-heldout").click()
    rows = _wait_rows(driver, lambda r: len(r) == 1)
    rows[0].click()
    assert "Held-out grade" in driver.find_element(By.ID, "detail").text
    driver.find_element(By.ID, "f-heldout").click()
    box = driver.find_element(By.ID, "f-q")
    box.send_keys("onerror\n")
    rows = _wait_rows(driver, lambda r: len(r) == 1)
    assert rows[0].find_elements(By.TAG_NAME, "td")[2].text == "hostile-2"


def test_html_in_completions_shows_as_text_and_runs_nothing(page):
    driver, url = page
    _open(driver, url, "rollouts")
    driver.find_element(By.CSS_SELECTOR, "#f-step option[value='3']").click()
    rows = _wait_rows(
        driver, lambda r: len(r) == PER_STEP and r[0].find_elements(By.TAG_NAME, "td")[1].text == "3"
    )
    for k in (1, 2, 3):
        rows[k].click()
        detail = driver.find_element(By.ID, "detail")
        shown = [p.text for p in detail.find_elements(By.CSS_SELECTOR, ".msg pre")]
        assert shown == [HOSTILE[k - 1]] * 2  # prompt and completion: the markup itself, as text
        assert detail.find_element(By.CSS_SELECTOR, "pre.reference").text == HOSTILE[k - 1]
        items = [p.text for p in detail.find_elements(By.CSS_SELECTOR, ".detail-item pre")]
        assert HOSTILE[k - 1] in items  # the grade's details
        assert not detail.find_elements(By.CSS_SELECTOR, "script, img, svg, [onerror], [onload]")
    cells = " ".join(r.text for r in rows[1:4])
    assert all(h[:20] in cells for h in HOSTILE)  # the table shows them as text too
    assert driver.execute_script("return window.__pwned === undefined")
    assert not driver.find_elements(By.CSS_SELECTOR, "main script, main img")


def test_evaluation_and_comparison_views(page):
    driver, url = page
    _open(driver, url, "evals")
    problems = driver.find_elements(By.CSS_SELECTOR, "#problems tr.row")
    assert len(problems) == 10
    driver.find_element(By.XPATH, "//div[@id='problems']//th[text()='pass@1']").click()  # sort ascending
    first = driver.find_elements(By.CSS_SELECTOR, "#problems tr.row td")
    header = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "#problems th")]
    assert first[header.index("pass@1")].text == "0"
    driver.find_elements(By.CSS_SELECTOR, "#problems tr.row")[0].click()
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#evals #detail"))
    _open(driver, url, "compare")
    assert "B is better" in driver.find_element(By.CSS_SELECTOR, ".verdict").text
    driver.find_element(By.XPATH, "//select/option[@value='b']").click()  # where B is better
    rows = driver.find_elements(By.CSS_SELECTOR, "#paired tr.row")
    assert len(rows) == 4 and all(r.find_elements(By.TAG_NAME, "td")[3].text == "1" for r in rows)
    rows[0].click()
    WebDriverWait(driver, 10).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#compare #detail")) == 2)
