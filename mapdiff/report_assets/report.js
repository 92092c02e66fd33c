// mapdiff report: the diffs on the road network, a filterable table, the evidence of one diff.
// Every value from the data goes into the page through textContent, never as HTML: map data
// is written by strangers.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("mapdiff-data").textContent);
  var COLORS = {
    object_added: "#1a9850", object_removed: "#d73027", object_moved: "#7b3294",
    value_changed: "#fdae61", road_missing: "#2166ac", oneway_reversed: "#e08214",
    road_closed: "#4d4d4d"
  };
  var PAGE = 100;
  var diffs = data.diffs;
  var map = L.map("map", { preferCanvas: true, zoomControl: true, attributionControl: true });
  var renderer = L.canvas({ padding: 0.5 });
  map.attributionControl.setPrefix(false);
  map.attributionControl.addAttribution(data.attribution);

  // the road network as the background (no tile server)
  var roads = data.roads.map(function (line) {
    return L.polyline(line, { renderer: renderer, color: "#9a9a9a", weight: 1.5, interactive: false });
  });
  L.layerGroup(roads).addTo(map);

  function colorOf(kind) { return COLORS[kind] || "#000000"; }

  // diffs: points as circles, lines as thick strokes, all on the canvas
  var layers = diffs.map(function (d, i) {
    var style = { renderer: renderer, color: colorOf(d.kind), weight: 4, opacity: 0.9 };
    var layer;
    if (d.geometry.type === "Point") {
      style.radius = 5; style.fillOpacity = 0.8; style.weight = 1.5;
      layer = L.circleMarker(d.geometry.coordinates, style);
    } else {
      layer = L.polyline(d.geometry.coordinates, style);
    }
    layer.on("click", function () { select(i, false); });
    return layer;
  });
  var diffLayer = L.layerGroup(layers).addTo(map);
  var evidenceLayer = L.layerGroup().addTo(map);
  if (data.bounds) { map.fitBounds(data.bounds); } else { map.setView([0, 0], 2); }

  // filters
  var kindSel = document.getElementById("f-kind");
  var classSel = document.getElementById("f-class");
  var confIn = document.getElementById("f-conf");
  var confOut = document.getElementById("f-conf-value");
  function fillSelect(sel, values) {
    values.forEach(function (v) {
      var o = document.createElement("option");
      o.value = v; o.textContent = v; sel.appendChild(o);
    });
  }
  function distinct(key) {
    var seen = {};
    diffs.forEach(function (d) { if (d[key] !== null) { seen[d[key]] = true; } });
    return Object.keys(seen).sort();
  }
  fillSelect(kindSel, distinct("kind"));
  fillSelect(classSel, distinct("class"));

  var shown = [];
  var page = 0;
  var selected = -1;

  function applyFilters() {
    var kind = kindSel.value, cls = classSel.value, minConf = parseFloat(confIn.value);
    confOut.textContent = minConf.toFixed(2);
    shown = [];
    diffLayer.clearLayers();
    diffs.forEach(function (d, i) {
      if ((kind === "" || d.kind === kind) && (cls === "" || d["class"] === cls) && d.confidence >= minConf) {
        shown.push(i);
        diffLayer.addLayer(layers[i]);
      }
    });
    page = 0;
    renderTable();
  }

  function cell(tr, text) {
    var td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    tr.appendChild(td);
  }

  function renderTable() {
    var body = document.getElementById("rows");
    body.textContent = "";
    var start = page * PAGE, end = Math.min(shown.length, start + PAGE);
    for (var k = start; k < end; k++) {
      var i = shown[k], d = diffs[i];
      var tr = document.createElement("tr");
      tr.className = "diff-row" + (i === selected ? " selected" : "");
      tr.dataset.index = String(i);
      var sw = document.createElement("td");
      var dot = document.createElement("span");
      dot.className = "dot"; dot.style.background = colorOf(d.kind);
      sw.appendChild(dot); tr.appendChild(sw);
      cell(tr, d.diff_id); cell(tr, d.kind); cell(tr, d.confidence.toFixed(2)); cell(tr, d["class"]);
      cell(tr, d.old_value); cell(tr, d.new_value);
      tr.addEventListener("click", (function (j) { return function () { select(j, true); }; })(i));
      body.appendChild(tr);
    }
    document.getElementById("n-shown").textContent = String(shown.length);
    document.getElementById("n-diffs").textContent = String(diffs.length);
    document.getElementById("page-info").textContent =
      shown.length ? (start + 1) + "\u2013" + end + " of " + shown.length : "none";
    document.getElementById("prev").disabled = page === 0;
    document.getElementById("next").disabled = end >= shown.length;
  }

  var EVIDENCE = [
    ["diff_id", "diff"], ["kind", "kind"], ["class", "class"], ["confidence", "confidence"],
    ["feature_id", "map feature"], ["old_value", "map value"], ["object_id", "observed object"],
    ["new_value", "observed value"], ["value_share", "share of sightings with that value"],
    ["distance_m", "distance (m)"], ["n_trips", "trips that saw it"], ["n_observations", "observations"],
    ["visible_trips", "trips that had it in view"], ["edge_ids", "edges"], ["passes", "passes with the direction"],
    ["against", "passes against it"], ["expected_passes", "trips expected"], ["node_from", "from node"],
    ["node_to", "to node"]
  ];

  function select(i, zoom) {
    selected = i;
    var d = diffs[i];
    var box = document.getElementById("evidence");
    box.textContent = "";
    var h = document.createElement("h3");
    h.textContent = d.kind + " \u00b7 " + (d["class"] || "");
    box.appendChild(h);
    var dl = document.createElement("dl");
    EVIDENCE.forEach(function (pair) {
      var v = d[pair[0]];
      if (v === null || v === undefined || v === "" || (typeof v === "number" && isNaN(v))) { return; }
      var dt = document.createElement("dt"); dt.textContent = pair[1];
      var dd = document.createElement("dd");
      dd.textContent = typeof v === "number" && !Number.isInteger(v) ? v.toFixed(2) : String(v);
      dl.appendChild(dt); dl.appendChild(dd);
    });
    box.appendChild(dl);
    evidenceLayer.clearLayers();
    var rays = data.rays[String(d.object_id)] || [];
    rays.forEach(function (r) {
      L.polyline(r, { renderer: renderer, color: "#2b83ba", weight: 1, opacity: 0.6 }).addTo(evidenceLayer);
    });
    if (rays.length) {
      var note = document.createElement("p");
      note.textContent = rays.length + " observation rays drawn";
      box.appendChild(note);
    }
    var target = layers[i];
    L.circleMarker(target.getBounds ? target.getBounds().getCenter() : target.getLatLng(),
      { renderer: renderer, radius: 12, color: "#000", weight: 2, fill: false }).addTo(evidenceLayer);
    if (zoom) {
      if (target.getBounds) { map.fitBounds(target.getBounds(), { maxZoom: 18 }); }
      else { map.setView(target.getLatLng(), Math.max(map.getZoom(), 17)); }
    }
    renderTable();
  }

  kindSel.addEventListener("change", applyFilters);
  classSel.addEventListener("change", applyFilters);
  confIn.addEventListener("input", applyFilters);
  document.getElementById("prev").addEventListener("click", function () { page -= 1; renderTable(); });
  document.getElementById("next").addEventListener("click", function () { page += 1; renderTable(); });

  // the legend
  var legend = document.getElementById("legend");
  Object.keys(COLORS).forEach(function (k) {
    var n = diffs.filter(function (d) { return d.kind === k; }).length;
    var item = document.createElement("span");
    item.className = "legend-item";
    var dot = document.createElement("span"); dot.className = "dot"; dot.style.background = COLORS[k];
    item.appendChild(dot);
    item.appendChild(document.createTextNode(k + " (" + n + ")"));
    legend.appendChild(item);
  });
  applyFilters();
  document.body.dataset.ready = "1";
})();
