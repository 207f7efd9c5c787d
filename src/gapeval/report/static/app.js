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
    if (labelling) return models.filter(function (m) { return m.name === labelModel(); });
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
      if (labelling && o.status === "done") col.appendChild(labeller(m, item, "und", o.sample, line));
      col.appendChild(verdictsOf(o));
    });
    var imgs = el("div", "drawn");
    e.gen.forEach(function (o) {
      // Each image with its own verdicts beneath it.
      var cell = el("div", "output");
      if (o.status === "done" && o.image) cell.appendChild(thumb(o.image, "generated " + o.sample));
      else cell.appendChild(el("div", "fail", "image " + o.sample + ": " + o.status + (o.error ? " (" + o.error + ")" : "")));
      if (labelling && o.status === "done") cell.appendChild(labeller(m, item, "gen", o.sample, cell));
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

  // -- labelling by people -------------------------------------------------------------------------
  // Each output of one model gets pass / fail / skip; progress is kept in this browser (localStorage,
  // under a key of this report), and the labels leave as the CSV that `gapeval audit --truth` reads.
  var LKEY = "gapeval-labels:" + ((DATA.labels && DATA.labels.key) || "report");
  var labels = {};
  try { labels = JSON.parse(window.localStorage.getItem(LKEY) || "{}") || {}; } catch (e) { labels = {}; }
  var labelling = false, current = -1, targets = [];
  var lb = {
    toggle: document.getElementById("label-toggle"),
    bar: document.getElementById("label-bar"),
    model: document.getElementById("label-model"),
    count: document.getElementById("label-count"),
    exportBtn: document.getElementById("label-export"),
    clear: document.getElementById("label-clear"),
  };
  models.forEach(function (m) { lb.model.appendChild(new Option(m.name, m.name)); });
  function labelModel() { return lb.model.value || (models[0] && models[0].name); }
  function outKey(model, item, dir, sample) { return [model, item, dir, sample].join("\u0001"); }
  function save() {
    try { window.localStorage.setItem(LKEY, JSON.stringify(labels)); } catch (e) { /* private mode: kept in the page */ }
  }

  function collectTargets() {
    var m = models.filter(function (x) { return x.name === labelModel(); })[0];
    targets = [];
    if (!m) return;
    found.forEach(function (item) {
      var e = entryOf(m, item.id);
      if (!e) return;
      ["und", "gen"].forEach(function (dir) {
        e[dir].forEach(function (o) {
          if (o.status === "done") targets.push({ item: item.id, dir: dir, sample: o.sample, key: outKey(m.name, item.id, dir, o.sample) });
        });
      });
    });
  }
  function updateCount() {
    var done = targets.filter(function (t) { return labels[t.key] === "pass" || labels[t.key] === "fail"; }).length;
    var skipped = targets.filter(function (t) { return labels[t.key] === "skip"; }).length;
    lb.count.textContent = done + " of " + targets.length + " labelled" + (skipped ? ", " + skipped + " skipped" : "");
  }

  function labeller(m, item, dir, sample, holder) {
    var key = outKey(m.name, item.id, dir, sample);
    var box = el("div", "labeller");
    box.setAttribute("data-key", key);
    holder.setAttribute("data-out", key);
    ["pass", "fail", "skip"].forEach(function (v) {
      var b = el("button", labels[key] === v ? "on" : "", v);
      b.type = "button";
      b.setAttribute("data-label", v);
      b.addEventListener("click", function () {
        setLabel(key, v);
        var pos = targets.map(function (t) { return t.key; }).indexOf(key);
        if (pos >= 0) go(pos);
      });
      box.appendChild(b);
    });
    return box;
  }
  function setLabel(key, v) {
    labels[key] = v;
    save();
    Array.prototype.forEach.call(document.querySelectorAll(".labeller"), function (box) {
      if (box.getAttribute("data-key") !== key) return;
      Array.prototype.forEach.call(box.children, function (b) { b.className = b.getAttribute("data-label") === v ? "on" : ""; });
    });
    updateCount();
  }
  function nodeOf(key) {
    var all = document.querySelectorAll("[data-out]");
    for (var i = 0; i < all.length; i++) if (all[i].getAttribute("data-out") === key) return all[i];
    return null;
  }
  function go(pos) {
    if (!targets.length) return;
    pos = Math.max(0, Math.min(targets.length - 1, pos));
    var t = targets[pos];
    while (!nodeOf(t.key) && shown < found.length) showMore();  // the card may not be drawn yet
    var old = document.querySelector(".current");
    if (old) old.classList.remove("current");
    var node = nodeOf(t.key);
    current = pos;
    if (node) {
      node.classList.add("current");
      if (node.scrollIntoView) node.scrollIntoView({ block: "center" });
    }
  }
  function setLabelling(on) {
    labelling = on;
    lb.bar.hidden = !on;
    lb.toggle.setAttribute("aria-pressed", on ? "true" : "false");
    lb.toggle.textContent = on ? "stop labelling" : "label outputs";
    document.body.classList.toggle("labelling", on);
    refresh();
    if (on) go(0);
  }
  function csvCell(v) {
    v = String(v);
    return /[",\r\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v;
  }
  function exportLabels() {
    var model = labelModel();
    var rows = ["item_id,direction,sample,label,model"];
    Object.keys(labels).sort().forEach(function (key) {
      var parts = key.split("\u0001");
      var v = labels[key];
      if (parts[0] !== model || (v !== "pass" && v !== "fail")) return;
      rows.push([csvCell(parts[1]), parts[2], parts[3], v, csvCell(model)].join(","));
    });
    var blob = new Blob([rows.join("\r\n") + "\r\n"], { type: "text/csv" });
    var a = el("a");
    a.href = URL.createObjectURL(blob);
    a.download = "labels.csv";
    document.body.appendChild(a);
    a.click();
    a.remove();
  }
  lb.toggle.addEventListener("click", function () { setLabelling(!labelling); });
  lb.model.addEventListener("change", function () { if (labelling) setLabelling(true); });
  lb.exportBtn.addEventListener("click", exportLabels);
  lb.clear.addEventListener("click", function () {
    if (!window.confirm("Clear every label of this report kept in this browser?")) return;
    labels = {};
    save();
    refresh();
    if (labelling) go(0);
  });
  document.addEventListener("keydown", function (e) {
    if (!labelling || e.ctrlKey || e.metaKey || e.altKey) return;
    var tag = (e.target && e.target.tagName) || "";
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") return;
    var k = e.key.toLowerCase();
    var value = { p: "pass", f: "fail", s: "skip" }[k];
    if (value && current >= 0 && targets[current]) {
      setLabel(targets[current].key, value);
      go(current + 1);
    } else if (k === "n" || k === "j" || k === "arrowdown") {
      go(current + 1);
    } else if (k === "b" || k === "k" || k === "arrowup") {
      go(current - 1);
    } else {
      return;
    }
    e.preventDefault();
  });

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
    if (labelling) { collectTargets(); updateCount(); current = -1; }
  }
  Object.keys(f).forEach(function (k) { f[k].addEventListener(k === "text" ? "input" : "change", refresh); });
  more.addEventListener("click", showMore);
  if (DATA.labels && DATA.labels.start) setLabelling(true);
  else refresh();
  window.gapevalReadyAt = performance.now();
  window.gapevalReady = true;
})();
