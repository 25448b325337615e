// The part of d3 (v5) and jQuery that bertviz's head_view.js and model_view.js call, and require.js's two entry
// points, so their drawing code runs without any library. Selections keep d3's grouping (one group per parent)
// because bertviz's callbacks rely on the index inside the group and on data inherited from the parent.
(function (global) {
  "use strict";
  const SVG_NS = "http://www.w3.org/2000/svg";

  function Selection(groups, parents) { this._groups = groups; this._parents = parents; }
  function EnterSelection(groups, parents) { this._groups = groups; this._parents = parents; }

  function make(parent, name) {
    let ns = parent.namespaceURI === SVG_NS ? SVG_NS : null;
    if (name.startsWith("svg:")) { ns = SVG_NS; name = name.slice(4); }
    if (name === "svg") ns = SVG_NS;
    return ns ? document.createElementNS(ns, name) : document.createElement(name);
  }
  function value(v, node, i, group) { return typeof v === "function" ? v.call(node, node.__data__, i, group) : v; }

  Selection.prototype = {
    each(fn) {
      this._groups.forEach(g => g.forEach((node, i) => { if (node) fn.call(node, node.__data__, i, g); }));
      return this;
    },
    node() { for (const g of this._groups) for (const n of g) if (n) return n; return null; },
    empty() { return this.node() === null; },
    select(sel) {
      const groups = this._groups.map(g => g.map(node => {
        if (!node) return null;
        const sub = typeof sel === "function" ? sel.call(node) : node.querySelector(sel);
        if (sub && "__data__" in node) sub.__data__ = node.__data__;
        return sub;
      }));
      return new Selection(groups, this._parents);
    },
    selectAll(sel) {
      const groups = [], parents = [];
      this.each(function () { groups.push(Array.from(this.querySelectorAll(sel))); parents.push(this); });
      return new Selection(groups, parents);
    },
    attr(name, v) {
      if (arguments.length < 2) { const n = this.node(); return n && n.getAttribute(name); }
      return this.each(function (d, i, g) {
        const x = value(v, this, i, g);
        if (x == null) this.removeAttribute(name); else this.setAttribute(name, String(x));
      });
    },
    style(name, v) {
      return this.each(function (d, i, g) {
        const x = value(v, this, i, g);
        if (x == null) this.style.removeProperty(name); else this.style.setProperty(name, String(x));
      });
    },
    classed(names, v) {
      return this.each(function (d, i, g) {
        const on = value(v, this, i, g);
        names.split(/\s+/).filter(Boolean).forEach(c => this.classList.toggle(c, !!on));
      });
    },
    text(v) {
      return this.each(function (d, i, g) { const x = value(v, this, i, g); this.textContent = x == null ? "" : x; });
    },
    append(name) {
      const groups = this._groups.map(g => g.map(node => {
        if (!node) return null;
        const child = node.appendChild(make(node, name));
        if ("__data__" in node) child.__data__ = node.__data__;
        return child;
      }));
      return new Selection(groups, this._parents);
    },
    remove() { return this.each(function () { if (this.parentNode) this.parentNode.removeChild(this); }); },
    data(values) {
      const update = [], enter = [];
      this._groups.forEach((g, j) => {
        const parent = this._parents[j];
        const data = typeof values === "function" ? values.call(parent, parent.__data__, j, this._parents) : values;
        const u = new Array(data.length).fill(null), e = new Array(data.length).fill(null);
        data.forEach((d, i) => {
          if (i < g.length && g[i]) { g[i].__data__ = d; u[i] = g[i]; } else { e[i] = { __data__: d }; }
        });
        update.push(u); enter.push(e);
      });
      const sel = new Selection(update, this._parents);
      sel._enter = new EnterSelection(enter, this._parents);
      return sel;
    },
    enter() { return this._enter || new EnterSelection(this._groups.map(g => g.map(() => null)), this._parents); },
    on(type, listener) {
      return this.each(function (d, i, g) {
        const key = "__on_" + type;
        if (this[key]) this.removeEventListener(type, this[key]);
        const node = this;
        this[key] = function () { listener.call(node, node.__data__, i, g); };
        this.addEventListener(type, this[key]);
      });
    },
  };
  EnterSelection.prototype.append = function (name) {
    const groups = this._groups.map((g, j) => g.map(ph => {
      if (!ph) return null;
      const child = this._parents[j].appendChild(make(this._parents[j], name));
      child.__data__ = ph.__data__;
      return child;
    }));
    return new Selection(groups, this._parents);
  };

  const root = document.documentElement;
  function hexToRgb(c) {
    const probe = document.createElement("span");
    probe.style.color = c;
    root.appendChild(probe);
    const m = getComputedStyle(probe).color.match(/\d+(\.\d+)?/g).map(Number);
    root.removeChild(probe);
    return m.slice(0, 3).map(x => x / 255);
  }
  function Hsl(h, s, l) { this.h = h; this.s = s; this.l = l; }
  Hsl.prototype.toString = function () {  // HSL -> "rgb(r, g, b)"
    const s = Math.min(1, Math.max(0, this.s)), l = Math.min(1, Math.max(0, this.l)), h = ((this.h % 360) + 360) % 360;
    const a = s * Math.min(l, 1 - l);
    const f = n => { const k = (n + h / 30) % 12; return l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1)); };
    return "rgb(" + [f(0), f(8), f(4)].map(x => Math.round(x * 255)).join(", ") + ")";
  };

  const d3 = {
    version: "minibert",
    select(sel) {
      const node = typeof sel === "string" ? document.querySelector(sel) : sel;
      return new Selection([[node]], [root]);
    },
    selectAll(sel) { return new Selection([Array.from(document.querySelectorAll(sel))], [root]); },
    schemeCategory10: ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                       "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"],
    scaleOrdinal(range) {  // implicit domain: values get colours in the order they are first seen
      const index = new Map();
      return function (x) {
        const key = String(x);
        if (!index.has(key)) index.set(key, index.size);
        return range[index.get(key) % range.length];
      };
    },
    hsl(color) {
      const [r, g, b] = hexToRgb(String(color));
      const max = Math.max(r, g, b), min = Math.min(r, g, b), l = (max + min) / 2, d = max - min;
      let h = 0, s = 0;
      if (d) {
        s = l < 0.5 ? d / (max + min) : d / (2 - max - min);
        h = max === r ? (g - b) / d + (g < b ? 6 : 0) : max === g ? (b - r) / d + 2 : (r - g) / d + 4;
        h *= 60;
      }
      return new Hsl(h, s, l);
    },
  };

  function JQ(nodes) { this.nodes = nodes; this.length = nodes.length; }
  function $(x) {
    if (x instanceof JQ) return x;
    if (typeof x === "string" && x.trim().startsWith("<")) {
      return new JQ([document.createElement(x.trim().match(/^<\s*([\w-]+)/)[1])]);
    }
    return new JQ(typeof x === "string" ? Array.from(document.querySelectorAll(x)) : [x]);
  }
  JQ.prototype = {
    each(fn) { this.nodes.forEach(fn); return this; },
    append(child) {
      const kids = child instanceof JQ ? child.nodes
        : [typeof child === "string" ? document.createTextNode(child) : child];
      return this.each(n => kids.forEach(k => n.appendChild(k)));
    },
    empty() { return this.each(n => { while (n.firstChild) n.removeChild(n.firstChild); }); },
    val(v) {
      if (v === undefined) return this.nodes.length ? this.nodes[0].value : undefined;
      return this.each(n => { n.value = v; });
    },
    text(t) {
      if (t === undefined) return this.nodes.map(n => n.textContent).join("");
      return this.each(n => { n.textContent = t; });
    },
    attr(name, v) {
      if (v === undefined) return this.nodes.length ? this.nodes[0].getAttribute(name) : undefined;
      return this.each(n => n.setAttribute(name, v));
    },
    on(type, fn) { return this.each(n => n.addEventListener(type, fn)); },
    change() { return this.each(n => n.dispatchEvent(new Event("change"))); },
  };

  const modules = { d3: d3, jquery: $ };
  global.require = { config: function () {} };
  global.requirejs = function (deps, callback) {
    try {
      callback.apply(null, deps.map(name => modules[name]));
    } catch (err) {
      const p = document.createElement("pre");
      p.className = "minibert-error";
      p.textContent = "attention view failed: " + err;
      document.body.appendChild(p);
      throw err;
    }
  };
})(window);
