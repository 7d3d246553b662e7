/* Filters of the catalog and audit pages: no server, no framework. A form marked
   data-filter-for="ID" filters the [data-item] children of #ID: a search box matches every
   word against data-search, a select matches its data-KEY attribute exactly. */
(function () {
  "use strict";
  document.querySelectorAll("form[data-filter-for]").forEach(function (form) {
    var list = document.getElementById(form.getAttribute("data-filter-for"));
    if (!list) { return; }
    var items = Array.prototype.slice.call(list.querySelectorAll("[data-item]"));
    var controls = Array.prototype.slice.call(form.querySelectorAll("[data-key]"));
    var status = form.querySelector("[data-filter-status]");
    var empty = document.querySelector("[data-filter-empty]");
    function matches(item, control) {
      var want = control.value.trim().toLowerCase();
      var have = (item.getAttribute("data-" + control.getAttribute("data-key")) || "").toLowerCase();
      if (!want) { return true; }
      if (control.type !== "search") { return have === want; }
      return want.split(/\s+/).every(function (word) { return have.indexOf(word) !== -1; });
    }
    function apply() {
      var shown = 0;
      items.forEach(function (item) {
        var ok = controls.every(function (c) { return matches(item, c); });
        item.hidden = !ok;
        if (ok) { shown += 1; }
      });
      if (status) { status.textContent = shown + " of " + items.length + " shown"; }
      if (empty) { empty.hidden = shown !== 0; }
    }
    form.addEventListener("input", apply);
    form.addEventListener("change", apply);
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    form.hidden = false;
    apply();
  });
})();
