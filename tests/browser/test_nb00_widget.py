"""Notebook 00 in a real JupyterLab: run every cell, move the temperature slider, see the figure change."""

from .lab import press_keys_on_slider, run_and_find_slider, screenshot, wait_for_new_src, widget_image

NOTEBOOK = "00_welcome_and_setup.ipynb"


def test_temperature_slider_redraws_the_figure(page, lab_server):
    box, before, readout_before = run_and_find_slider(page, lab_server, NOTEBOOK, "temperature", "nb00")

    readout_after = float(press_keys_on_slider(page, box, "ArrowRight", 5))
    after = wait_for_new_src(page, widget_image(page, box), before)
    screenshot(page, "nb00_after")

    assert readout_before == 1.0
    assert readout_after > readout_before, (readout_before, readout_after)
    assert after.startswith("data:image/png") and after != before
