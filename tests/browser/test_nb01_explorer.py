"""Notebook 01 in a real JupyterLab: run every cell, move the explorer's temperature slider, and
see the heatmap redrawn."""

from .lab import press_keys_on_slider, run_and_find_slider, screenshot, wait_for_new_src, widget_image

NOTEBOOK = "01_attention_as_a_weighted_average.ipynb"


def test_explorer_temperature_slider_redraws_the_heatmap(page, lab_server):
    box, before, readout_before = run_and_find_slider(page, lab_server, NOTEBOOK, "temperature",
                                                      "nb01_explorer")

    # Colder: the log slider steps 0.05 in log10(τ), so ten presses divide τ by about 3.2.
    readout_after = float(press_keys_on_slider(page, box, "ArrowLeft", 10))
    first_redraw = wait_for_new_src(page, widget_image(page, box), before)
    # Each key press queues a redraw; wait for the kernel to finish them before the last look.
    page.locator(".jp-StatusBar-Widget", has_text="| Idle").first.wait_for(timeout=60_000)
    final = widget_image(page, box).get_attribute("src")
    screenshot(page, "nb01_explorer_after")

    assert readout_before == 1.0
    assert readout_after < readout_before, (readout_before, readout_after)
    assert first_redraw.startswith("data:image/png") and first_redraw != before
    assert final.startswith("data:image/png") and final != before
