// gapeval report: sortable tables and the item browser.
// Every string from a dataset, a model or a judge is put into the page with textContent, never as markup.
(function () {
  "use strict";
  var DATA = window.GAPEVAL_DATA || { items: [], models: [], outcomes: {} };
  var PAGE = 30;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // -- sortable tables -------------------------------------------------------------------------
  function sortable(table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener("click", function () {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var text = th.getAttribute("data-type") === "text";
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col], y = b.cells[col];
          if (text) return asc ? x.textContent.localeCompare(y.textContent) : y.textContent.localeCompare(x.textContent);
          var vx = x.getAttribute("data-v"), vy = y.getAttribute("data-v");
          // Blank values (nothing decided) always sort last.
          if (vx === "" && vy === "") return 0;
          if (vx === "") return 1;
          if (vy === "") return -1;
          return asc ? parseFloat(vx) - parseFloat(vy) : parseFloat(vy) - parseFloat(vx);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), sortable);

  // -- images ----------------------------------------------------------------------------------
  var box = document.getElementById("lightbox");
  var boxImg = document.getElementById("lightbox-img");
  document.getElementById("lightbox-close").addEventListener("click", function () { box.close(); });
  box.addEventListener("click", function (e) { if (e.target === box) box.close(); });

  function thumb(pair, label) {
    if (!pair) return el("span", "muted", label + ": unreadable");
    var img = el("img", "thumb");
    img.src = pair[1];
    img.alt = label;
    img.title = label + " (click for full size)";
    img.loading = "lazy";
    img.addEventListener("click", function () { boxImg.src = pair[0]; box.showModal(); });
    return img;
  }

  // -- the browser -----------------------------------------------------------------------------
  var models = DATA.models;
  function entryOf(m, id) { return m.items[id]; }

  function options(select, values, labels) {
    select.appendChild(new Option("all", ""));
    values.forEach(function (v) { select.appendChild(new Option(labels ? labels[v] : v, v)); });
  }
  var uniq = function (xs) { return Array.from(new Set(xs)).filter(function (x) { return x !== ""; }).sort(); };
  var f = {
    category: document.getElementById("f-category"),
    subcategory: document.getElementById("f-subcategory"),
    outcome: document.getElementById("f-outcome"),
    model: document.getElementById("f-model"),
    agreement: document.getElementById("f-agreement"),
    text: document.getElementById("f-text"),
  };
  options(f.category, uniq(DATA.items.map(function (i) { return i.category; })));
  options(f.subcategory, uniq(DATA.items.map(function (i) { return i.subcategory; })));
  options(f.outcome, Object.keys(DATA.outcomes), DATA.outcomes);
  options(f.model, models.map(function (m) { return m.name; }));
  options(f.agreement, ["agree", "disagree", "single"],
          { agree: "judges agree", disagree: "judges disagree", single: "one judge" });

  function chosenModels() {
    return f.model.value ? models.filter(function (m) { return m.name === f.model.value; }) : models;
  }

  function matches(item) {
    if (f.category.value && item.category !== f.category.value) return false;
    if (f.subcategory.value && item.subcategory !== f.subcategory.value) return false;
    if (f.text.value && item.id.indexOf(f.text.value) < 0) return false;
    var ms = chosenModels();
    var need = function (pred) { return ms.some(function (m) { var e = entryOf(m, item.id); return e && pred(e); }); };
    if (f.outcome.value && !need(function (e) { return e.outcome === f.outcome.value; })) return false;
    if (f.agreement.value && !need(function (e) { return e.agreement === f.agreement.value; })) return false;
    return ms.some(function (m) { return entryOf(m, item.id); });
  }

  function verdictsOf(out) {
    var wrap = el("div");
    out.verdicts.forEach(function (v) {
      var d = el("details", "verdict");
      var verdict = v.passed === true ? "pass" : v.passed === false ? "fail" : v.status;
      var s = el("summary", null, v.judge + ": " + verdict + (v.judge === out.decided_by ? " (decides)" : ""));
      d.appendChild(s);
      if (v.reason) d.appendChild(el("div", null, "reason: " + v.reason));
      if (v.raw) d.appendChild(el("pre", null, v.raw));
      wrap.appendChild(d);
    });
    return wrap;
  }

  function modelColumn(m, item) {
    var e = entryOf(m, item.id);
    var col = el("div", "model");
    var head = el("div");
    head.appendChild(el("strong", null, m.name));
    if (e) head.appendChild(el("span", "tag outcome-" + e.outcome, DATA.outcomes[e.outcome]));
    col.appendChild(head);
    if (!e) { col.appendChild(el("div", "muted", "not in this run")); return col; }
    e.und.forEach(function (o) {
      var line = el("div");
      line.appendChild(el("span", "muted", "answer" + (e.und.length > 1 ? " " + o.sample : "") + ": "));
      if (o.status === "done") line.appendChild(el("span", "text answer", o.text));
      else line.appendChild(el("span", "fail", o.status + (o.error ? " (" + o.error + ")" : "")));
      col.appendChild(line);
      col.appendChild(verdictsOf(o));
    });
    var imgs = el("div", "drawn");
    e.gen.forEach(function (o) {
      // Each image with its own verdicts beneath it.
      var cell = el("div", "output");
      if (o.status === "done" && o.image) cell.appendChild(thumb(o.image, "generated " + o.sample));
      else cell.appendChild(el("div", "fail", "image " + o.sample + ": " + o.status + (o.error ? " (" + o.error + ")" : "")));
      cell.appendChild(verdictsOf(o));
      imgs.appendChild(cell);
    });
    col.appendChild(imgs);
    return col;
  }

  function card(item) {
    var c = el("article", "item");
    c.setAttribute("data-item", item.id);
    var h = el("h3", null, item.id);
    h.appendChild(el("span", "tag", item.category + (item.subcategory ? " / " + item.subcategory : "")));
    c.appendChild(h);
    var p = el("div", "prompts");
    var und = el("div");
    und.appendChild(el("strong", null, "understanding: "));
    und.appendChild(document.createTextNode(item.und_prompt || "(prompt not in the report)"));
    (item.images || []).forEach(function (pair, k) { und.appendChild(el("br")); und.appendChild(thumb(pair, "question image " + k)); });
    var gen = el("div");
    gen.appendChild(el("strong", null, "generation: "));
    gen.appendChild(document.createTextNode(item.gen_prompt || "(prompt not in the report)"));
    if (item.input_image) { gen.appendChild(el("br")); gen.appendChild(thumb(item.input_image, "image to edit")); }
    p.appendChild(und);
    p.appendChild(gen);
    c.appendChild(p);
    if (item.ref_text || item.ref_image) {
      var ref = el("div");
      ref.appendChild(el("strong", null, "reference: "));
      if (item.ref_text) ref.appendChild(el("span", "text", item.ref_text));
      if (item.ref_image) ref.appendChild(thumb(item.ref_image, "reference image"));
      c.appendChild(ref);
    }
    var row = el("div", "models");
    chosenModels().forEach(function (m) { row.appendChild(modelColumn(m, item)); });
    c.appendChild(row);
    return c;
  }

  var list = document.getElementById("list");
  var more = document.getElementById("more");
  var count = document.getElementById("count");
  var found = [], shown = 0;

  function showMore() {
    var frag = document.createDocumentFragment();
    found.slice(shown, shown + PAGE).forEach(function (item) { frag.appendChild(card(item)); });
    list.appendChild(frag);
    shown = Math.min(found.length, shown + PAGE);
    more.hidden = shown >= found.length;
    count.textContent = found.length + " item(s), " + shown + " shown";
  }
  function refresh() {
    found = DATA.items.filter(matches);
    list.textContent = "";
    shown = 0;
    showMore();
  }
  Object.keys(f).forEach(function (k) { f[k].addEventListener(k === "text" ? "input" : "change", refresh); });
  more.addEventListener("click", showMore);
  refresh();
  window.gapevalReadyAt = performance.now();
  window.gapevalReady = true;
})();
