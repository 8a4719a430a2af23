"""Notebook 00 in a real JupyterLab: run every cell, move the temperature slider, see the figure change."""

from .lab import open_and_run_all, press_keys_on_slider, screenshot, slider, wait_for_new_src, widget_image

NOTEBOOK = "00_welcome_and_setup.ipynb"


def test_temperature_slider_redraws_the_figure(page, lab_server):
    open_and_run_all(page, lab_server, NOTEBOOK)
    box = slider(page, "temperature")
    box.scroll_into_view_if_needed()
    image = widget_image(page, box)
    before = image.get_attribute("src")
    readout_before = box.locator(".widget-readout").first.inner_text()
    screenshot(page, "nb00_before")

    readout_after = press_keys_on_slider(page, box, "ArrowRight", 5)
    after = wait_for_new_src(page, widget_image(page, box), before)
    screenshot(page, "nb00_after")

    assert readout_before.strip() == "1.00"
    assert float(readout_after) > float(readout_before), (readout_before, readout_after)
    assert after != before
