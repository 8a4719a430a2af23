// Search over window.AFL_SEARCH (built by scripts/build_site.py): every word of the query must
// appear in a section's heading or text; headings count more. No server, no network.
(function () {
  const params = new URLSearchParams(window.location.search);
  const query = (params.get("q") || "").trim();
  const box = document.getElementById("afl-q");
  const count = document.getElementById("afl-count");
  const list = document.getElementById("afl-results");
  box.value = query;
  if (!query) { count.textContent = "Type a word or two and press Enter."; return; }
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  const escape = (s) => s.replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
  const hits = [];
  for (const doc of window.AFL_SEARCH || []) {
    const title = doc.title.toLowerCase(), text = doc.text.toLowerCase();
    if (!words.every((w) => title.includes(w) || text.includes(w))) continue;
    let score = 0;
    for (const w of words) { score += 10 * title.split(w).length + text.split(w).length - 11; }
    hits.push({doc, score});
  }
  hits.sort((a, b) => b.score - a.score);
  count.textContent = hits.length ? `${hits.length} section(s) match "${query}".` : `No results for "${query}".`;
  for (const {doc} of hits.slice(0, 50)) {
    const at = Math.max(0, doc.text.toLowerCase().indexOf(words[0]) - 80);
    let snippet = escape(doc.text.slice(at, at + 240));
    for (const w of words) {
      snippet = snippet.replace(new RegExp(w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "gi"), (m) => `<mark>${m}</mark>`);
    }
    const item = document.createElement("li");
    item.innerHTML = `<a href="${escape(doc.url)}">${escape(doc.title)}</a><div class="afl-snippet">…${snippet}…</div>`;
    list.appendChild(item);
  }
})();
