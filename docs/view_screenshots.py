"""The README's pictures of `rft view`: each view of a folder (rft demo's by default), saved as small PNGs.

Needs chromium, chromium-driver (apt) and selenium. Run: python docs/view_screenshots.py [FOLDER] [--out docs]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from PIL import Image  # matplotlib's dependency
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from rft.app.view import make_server, serve_in_thread


def shoot(folder: Path, out: Path, width: int = 1280, height: int = 760) -> list[Path]:
    server = make_server(folder, port=0)
    serve_in_thread(server)
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", f"--window-size={width},{height}"):
        opts.add_argument(arg)
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=opts, service=service)
    saved = []
    try:
        for tab in ("curves", "rollouts", "evals", "compare"):
            driver.get("about:blank")
            driver.get(f"{server.url}#{tab}")
            WebDriverWait(driver, 20).until(
                lambda d, t=tab: d.execute_script("return document.body.dataset.ready") == t
            )
            time.sleep(0.5)  # the last step's page follows the step list
            if tab == "rollouts":
                rows = driver.find_elements(By.CSS_SELECTOR, "#rollouts tr.row")
                wrong = [r for r in rows if r.find_elements(By.TAG_NAME, "td")[3].text == "0"]
                (wrong or rows)[0].click()
            elif tab == "evals":  # the last evaluation (the final model's), a problem it failed
                driver.find_elements(By.CSS_SELECTOR, "#eval-pick option")[-1].click()
                time.sleep(1.0)
                driver.find_element(By.XPATH, "//div[@id='problems']//th[text()='pass@1']").click()
                driver.find_elements(By.CSS_SELECTOR, "#problems tr.row")[0].click()
            elif tab == "compare":
                driver.find_element(By.XPATH, "//select/option[@value='diff']").click()
                driver.find_elements(By.CSS_SELECTOR, "#paired tr.row")[0].click()
            time.sleep(0.5)
            path = out / f"view-{tab}.png"
            driver.save_screenshot(str(path))
            Image.open(path).quantize(colors=64).save(path, optimize=True)  # small files for the README
            saved.append(path)
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()
    return saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, nargs="?", default=Path("runs/demo"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = ap.parse_args()
    for p in shoot(args.folder, args.out):
        print(f"{p}: {p.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
