// Widgets without a kernel: each .afl-live box holds HTML controls, output areas and, per area, its
// precomputed states as JSON ({controls: [model ids], start: [indices], states: {"i,j": [pool refs]},
// pool: [{png} | {plotly} | {html} | {text}]}).
// Moving a control looks up the state at the controls' indices and shows its stored drawing.
(function () {
  "use strict";
  function indexOf(control) {
    if (control.type === "checkbox") {
      return JSON.parse(control.dataset.aflLabels).indexOf(control.checked ? "on" : "off");
    }
    return control.tagName === "SELECT" ? control.selectedIndex : Number(control.value);
  }
  function draw(area, refs, pool) {
    area.textContent = "";
    refs.forEach(function (ref) {
      const shown = pool[ref];
      if (shown.png !== undefined) {
        const img = document.createElement("img");
        img.alt = "drawing";
        img.src = "data:image/png;base64," + shown.png;
        area.appendChild(img);
      } else if (shown.plotly !== undefined) {
        const div = document.createElement("div");
        div.className = "plotly-graph-div afl-live-plotly";
        area.appendChild(div);
        window.Plotly.newPlot(div, shown.plotly.data, shown.plotly.layout || {}, {responsive: true, displaylogo: false});
      } else if (shown.html !== undefined) {
        const div = document.createElement("div");
        div.innerHTML = shown.html;
        area.appendChild(div);
      } else {
        const pre = document.createElement("pre");
        pre.textContent = shown.text || "";
        area.appendChild(pre);
      }
    });
  }
  function update(box) {
    box.querySelectorAll("input[type=range][data-afl-model]").forEach(function (slider) {
      const readout = slider.parentElement.querySelector("output");
      if (readout) readout.textContent = JSON.parse(slider.dataset.aflLabels)[Number(slider.value)];
    });
    box.querySelectorAll(".afl-live-output").forEach(function (area) {
      const data = area.aflData || (area.aflData = JSON.parse(document.getElementById(area.dataset.aflData).textContent));
      const key = data.controls.map(function (id, i) {
        const control = box.querySelector('[data-afl-model="' + id + '"]');
        return control ? indexOf(control) : data.start[i];  // a control not on the page stays put
      }).join(",");
      if (key === area.dataset.aflKey) return;
      const refs = data.states[key];
      area.dataset.aflKey = refs ? key : "missing";
      if (refs) draw(area, refs, data.pool);
      else area.textContent = "This combination was not precomputed.";
    });
  }
  document.querySelectorAll(".afl-live").forEach(function (box) {
    box.addEventListener("input", function () { update(box); });
    box.addEventListener("change", function () { update(box); });
  });
})();
