// frontdesk dashboard. One script for every page: the server renders the shell (see
// bot/dashboard/views.py), this fills #content from /dashboard/data/... JSON.
// Every string from the server is inserted with textContent (never innerHTML): customer text is
// data, not markup. Changes send the session's CSRF token in the X-CSRF-Token header.
(function () {
  "use strict";

  var root = document.getElementById("page");
  var content = document.getElementById("content");
  var statusLine = document.getElementById("status");
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  var business = root.dataset.business;
  var pageName = root.dataset.page;

  // ----- small helpers ------------------------------------------------------------------------
  function el(tag, props, children) {
    var node = document.createElement(tag);
    if (props) {
      Object.keys(props).forEach(function (key) {
        var value = props[key];
        if (value === null || value === undefined || value === false) { return; }
        if (key === "text") { node.textContent = String(value); }
        else if (key === "className") { node.className = value; }
        else if (key === "on") {
          Object.keys(value).forEach(function (ev) { node.addEventListener(ev, value[ev]); });
        } else { node.setAttribute(key, value === true ? "" : String(value)); }
      });
    }
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) { return; }
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function clear(node) {
    while (node.firstChild) { node.removeChild(node.firstChild); }
  }

  function setStatus(text, problem) {
    statusLine.textContent = text || "";
    statusLine.className = problem ? "problem" : "";
  }

  function withBusiness(path, params) {
    var url = new URL(path, window.location.origin);
    url.searchParams.set("business", business);
    Object.keys(params || {}).forEach(function (k) {
      if (params[k] !== null && params[k] !== undefined && params[k] !== "") { url.searchParams.set(k, params[k]); }
    });
    return url.pathname + url.search;
  }

  function call(method, path, params, body) {
    var options = { method: method, credentials: "same-origin", headers: { "Accept": "application/json" } };
    if (method !== "GET") {
      options.headers["X-CSRF-Token"] = csrf;
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body || {});
    }
    return fetch(withBusiness(path, params), options).then(function (response) {
      if (response.status === 401) {
        window.location.assign("/dashboard/login?next=" + encodeURIComponent(window.location.pathname + window.location.search));
        throw new Error("logged out");
      }
      return response.json().then(function (data) {
        if (!response.ok) { throw new Error(data && data.error ? data.error : "request failed (" + response.status + ")"); }
        return data;
      });
    });
  }

  function failed(error) { setStatus(error.message, true); }

  // An instant on the business's clock, with the zone's name: the filters and the bookings use
  // that clock too, whatever the viewer's browser is set to.
  var clock = null;
  try {
    clock = new Intl.DateTimeFormat(undefined, {
      timeZone: root.dataset.timezone || undefined, year: "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit", timeZoneName: "short"
    });
  } catch (e) { clock = null; }

  function when(iso) {
    if (!iso) { return ""; }
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return String(iso); }
    return clock ? clock.format(d) : d.toLocaleString();
  }

  // The local date-time in an ISO string with offset, as written (the business's wall clock).
  function wall(iso) { return iso ? String(iso).slice(0, 16).replace("T", " ") : ""; }

  function money(minor, currency) {
    var value = (Number(minor) || 0) / 100;
    try { return new Intl.NumberFormat(undefined, { style: "currency", currency: currency || "EUR" }).format(value); }
    catch (e) { return value.toFixed(2) + " " + (currency || ""); }
  }

  function table(headers, rows, caption) {
    var head = el("thead", null, [el("tr", null, headers.map(function (h) { return el("th", { scope: "col", text: h }); }))]);
    var body = el("tbody", null, rows.map(function (cells) {
      return el("tr", null, cells.map(function (c) {
        return el("td", null, [c instanceof Node ? c : document.createTextNode(c === null || c === undefined ? "" : String(c))]);
      }));
    }));
    return el("table", null, [caption ? el("caption", { text: caption }) : null, head, body]);
  }

  function link(href, text) { return el("a", { href: withBusiness(href), text: text }); }

  function chart(canvas, config) {
    if (typeof window.Chart !== "function") { return null; }
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
    return new window.Chart(canvas, config);
  }

  function chartBox(label) {
    var canvas = el("canvas", { role: "img", "aria-label": label });
    return { box: el("figure", { className: "chart" }, [el("figcaption", { text: label }), el("div", { className: "chart-area" }, [canvas])]), canvas: canvas };
  }

  // ----- admin business switcher ---------------------------------------------------------------
  var switcher = document.getElementById("business-switch");
  if (switcher) {
    switcher.addEventListener("change", function () {
      window.location.assign("/dashboard?business=" + encodeURIComponent(switcher.value));
    });
  }

  // ----- transcripts -------------------------------------------------------------------------
  function messageItem(m) {
    var who = { customer: "Customer", bot: "Bot", human: "Staff", system: "System" }[m.author] || m.author;
    var item = el("li", { className: "msg msg-" + m.direction + " by-" + m.author, "data-seq": m.seq }, [
      el("span", { className: "msg-who", text: who }),
      el("span", { className: "msg-text", text: m.text }),
      el("time", { className: "msg-at", datetime: m.at, text: when(m.at) })
    ]);
    if (m.options && m.options.length) {
      item.appendChild(el("span", { className: "msg-options", text: "Options: " + m.options.map(function (o) { return o.label; }).join(" · ") }));
    }
    return item;
  }

  function transcript(conversationId, onConversation) {
    var list = el("ol", { className: "transcript", id: "transcript", "aria-label": "Transcript" });
    var last = 0;
    function load() {
      return call("GET", "/dashboard/data/conversations/" + encodeURIComponent(conversationId), { after: last }).then(function (data) {
        data.messages.forEach(function (m) {
          if (m.seq > last) { list.appendChild(messageItem(m)); last = m.seq; }
        });
        if (onConversation) { onConversation(data.conversation); }
      });
    }
    return { node: list, load: load };
  }

  function conversationFacts(c) {
    return el("dl", { className: "facts" }, [
      el("dt", { text: "Customer" }), el("dd", { id: "conv-customer", text: c.customer || "(unknown)" }),
      el("dt", { text: "Channel" }), el("dd", { text: c.channel }),
      el("dt", { text: "Agent" }), el("dd", { text: c.agent }),
      el("dt", { text: "Status" }), el("dd", { id: "conv-status", text: c.status }),
      el("dt", { text: "Started" }), el("dd", { text: when(c.startedAt) })
    ]);
  }

  // ----- pages ---------------------------------------------------------------------------------
  var pages = {};

  pages.conversations = function () {
    var status = el("select", { id: "filter-status", name: "status" }, [
      el("option", { value: "", text: "Any status" }), el("option", { value: "active", text: "Active" }),
      el("option", { value: "escalated", text: "Escalated" })
    ]);
    var channel = el("select", { id: "filter-channel", name: "channel" }, [el("option", { value: "", text: "Any channel" })].concat(
      ["web", "whatsapp", "instagram", "messenger", "sms", "telegram"].map(function (c) { return el("option", { value: c, text: c }); })));
    var search = el("input", { id: "filter-q", name: "q", type: "search", placeholder: "Name or words" });
    // days in the business's time zone (the server turns them into instants)
    var from = el("input", { id: "filter-from", name: "date_from", type: "date" });
    var to = el("input", { id: "filter-to", name: "date_to", type: "date" });
    var results = el("div", { id: "results" });
    var form = el("form", { className: "filters", on: { submit: function (e) { e.preventDefault(); load(); } } }, [
      el("label", null, ["Status ", status]), el("label", null, ["Channel ", channel]), el("label", null, ["Search ", search]),
      el("label", null, ["Started from ", from]), el("label", null, ["to ", to]),
      el("span", { className: "muted", text: "(days in " + (root.dataset.timezone || "the business's time zone") + ")" }),
      el("button", { type: "submit", text: "Filter" })
    ]);
    function load() {
      setStatus("Loading…");
      call("GET", "/dashboard/data/conversations", { status: status.value, channel: channel.value, q: search.value, date_from: from.value, date_to: to.value }).then(function (data) {
        clear(results);
        results.appendChild(table(["Customer", "Channel", "Agent", "Status", "Started", "Last activity"], data.conversations.map(function (c) {
          return [link("/dashboard/conversations/" + encodeURIComponent(c.id), c.customer || "(unknown)"), c.channel, c.agent, c.status, when(c.startedAt), when(c.lastActivityAt)];
        })));
        setStatus(data.conversations.length + " conversation(s)");
      }).catch(failed);
    }
    content.appendChild(form);
    content.appendChild(results);
    load();
  };

  pages.conversation = function () {
    var id = root.dataset.id;
    var facts = el("div");
    var t = transcript(id, function (c) {
      clear(facts);
      facts.appendChild(conversationFacts(c));
      if (c.status === "escalated") { facts.appendChild(link("/dashboard/handoff/" + encodeURIComponent(c.id), "Answer in the hand-off inbox")); }
    });
    content.appendChild(facts);
    content.appendChild(t.node);
    t.load().then(function () { setStatus(""); }).catch(failed);
  };

  pages.handoff = function () {
    var id = root.dataset.id;
    var inbox = el("nav", { className: "inbox", "aria-label": "Escalated conversations" });
    var pane = el("section", { className: "pane", "aria-label": "Conversation" });
    content.appendChild(el("div", { className: "handoff" }, [inbox, pane]));
    function loadInbox() {  // again after a hand-back, so the list never shows it as waiting
      return call("GET", "/dashboard/data/conversations", { status: "escalated" }).then(function (data) {
        var list = el("ul", { id: "handoff-list" }, data.conversations.map(function (c) {
          var a = link("/dashboard/handoff/" + encodeURIComponent(c.id), (c.customer || "(unknown)") + " · " + c.channel);
          if (c.id === id) { a.setAttribute("aria-current", "page"); }
          return el("li", null, [a, el("span", { className: "muted", text: " escalated " + when(c.escalatedAt) })]);
        }));
        clear(inbox);
        inbox.appendChild(data.conversations.length ? list : el("p", { id: "handoff-empty", text: "Nobody is waiting for a person." }));
      });
    }
    loadInbox().catch(failed);
    if (!id) { pane.appendChild(el("p", { text: "Pick a conversation to answer it." })); return; }

    var facts = el("div");
    var t = transcript(id, function (c) { clear(facts); facts.appendChild(conversationFacts(c)); });
    var text = el("textarea", { id: "reply-text", name: "text", rows: 3, maxlength: 4000, required: true });
    var send = el("button", { type: "submit", id: "reply-send", text: "Send reply" });
    var form = el("form", { id: "reply-form", on: { submit: function (e) {
      e.preventDefault();
      if (!text.value.trim()) { return; }
      send.disabled = true;
      call("POST", "/dashboard/data/conversations/" + encodeURIComponent(id) + "/reply", null, { text: text.value }).then(function () {
        text.value = "";
        setStatus("Sent.");
        return t.load();
      }).catch(failed).then(function () { send.disabled = false; });
    } } }, [el("label", { "for": "reply-text", text: "Your reply (sent through the customer's channel)" }), text, send]);
    var release = el("button", { type: "button", id: "release", text: "Hand back to the bot", on: { click: function () {
      release.disabled = true;
      call("POST", "/dashboard/data/conversations/" + encodeURIComponent(id) + "/release").then(function () {
        setStatus("Handed back to the bot.");
        return Promise.all([t.load(), loadInbox()]);
      }).catch(failed).then(function () { release.disabled = false; });
    } } });
    pane.appendChild(facts);
    pane.appendChild(t.node);
    pane.appendChild(form);
    pane.appendChild(release);
    t.load().catch(failed);
    window.setInterval(function () { t.load().catch(function () {}); }, 3000);
  };

  pages.bookings = function () {
    var iso = function (d) { return d.toISOString().slice(0, 10); };
    // empty at first: the server picks the business's today and the next six days
    var from = el("input", { type: "date", id: "date-from" });
    var to = el("input", { type: "date", id: "date-to" });
    var status = el("select", { id: "booking-status" }, [el("option", { value: "", text: "Any status" })].concat(
      ["pending_payment", "scheduled", "completed", "missed", "cancelled", "rescheduled"].map(function (s) { return el("option", { value: s, text: s }); })));
    var view = el("select", { id: "booking-view" }, [el("option", { value: "list", text: "List" }), el("option", { value: "calendar", text: "Calendar" })]);
    var results = el("div", { id: "results" });
    var form = el("form", { className: "filters", on: { submit: function (e) { e.preventDefault(); load(); } } }, [
      el("label", null, ["From ", from]), el("label", null, ["To ", to]), el("label", null, ["Status ", status]),
      el("label", null, ["View ", view]), el("button", { type: "submit", text: "Show" })
    ]);
    view.addEventListener("change", load);

    function act(b) {
      var box = el("span", { className: "actions" });
      if (b.status !== "scheduled" && b.status !== "pending_payment") { return box; }
      box.appendChild(el("button", { type: "button", className: "cancel", text: "Cancel", on: { click: function () {
        if (!window.confirm("Cancel this booking?")) { return; }
        call("POST", "/dashboard/data/bookings/" + encodeURIComponent(b.id) + "/cancel", null, { reason: "cancelled from the dashboard" })
          .then(function () { setStatus("Cancelled."); load(); }).catch(failed);
      } } }));
      box.appendChild(el("button", { type: "button", className: "reschedule", text: "Reschedule", on: { click: function () {
        call("GET", "/dashboard/data/bookings/" + encodeURIComponent(b.id) + "/alternatives").then(function (data) {
          clear(box);
          if (!data.slots.length) { box.appendChild(el("span", { text: "No free times nearby." })); return; }
          data.slots.forEach(function (s) {
            box.appendChild(el("button", { type: "button", text: wall(s.start), on: { click: function () {
              call("POST", "/dashboard/data/bookings/" + encodeURIComponent(b.id) + "/reschedule", null, { start: s.start })
                .then(function () { setStatus("Moved to " + wall(s.start) + "."); load(); }).catch(failed);
            } } }));
          });
        }).catch(failed);
      } } }));
      return box;
    }

    function calendar(data) {
      var days = [];
      var d = new Date(data.dateFrom + "T00:00:00Z");
      var end = new Date(data.dateTo + "T00:00:00Z");
      while (d <= end && days.length < 31) { days.push(iso(d)); d = new Date(d.getTime() + 86400000); }
      var grid = el("div", { className: "calendar", id: "calendar" });
      days.forEach(function (day) {
        var items = data.bookings.filter(function (b) { return b.start.slice(0, 10) === day; });
        grid.appendChild(el("section", { className: "day" }, [
          el("h3", { text: day }),
          el("ul", null, items.map(function (b) {
            return el("li", { className: "status-" + b.status }, [
              el("span", { text: b.start.slice(11, 16) + " " + b.service + " · " + (b.customer.name || "") + " (" + (b.staff || "") + ")" })
            ]);
          }))
        ]));
      });
      return grid;
    }

    function load() {
      setStatus("Loading…");
      call("GET", "/dashboard/data/bookings", { date_from: from.value, date_to: to.value, status: status.value }).then(function (data) {
        clear(results);
        from.value = data.dateFrom;
        to.value = data.dateTo;
        if (view.value === "calendar") { results.appendChild(calendar(data)); }
        else {
          results.appendChild(table(["When (" + data.timezone + ")", "Service", "Staff", "Customer", "Status", "Price", ""], data.bookings.map(function (b) {
            return [wall(b.start), b.service, b.staff, b.customer.name, b.status, money(b.price, b.currency), act(b)];
          })));
        }
        setStatus(data.bookings.length + " booking(s)");
      }).catch(failed);
    }
    content.appendChild(form);
    content.appendChild(results);
    load();
  };

  function metricList(title, values, labels) {
    return el("section", { className: "metrics" }, [el("h3", { text: title }), el("dl", null, [].concat.apply([], Object.keys(labels).map(function (k) {
      var v = values ? values[k] : null;
      return [el("dt", { text: labels[k] }), el("dd", { text: v === null || v === undefined ? "—" : String(v) })];
    })))]);
  }

  pages.grade = function () {
    var agent = root.dataset.agent;
    setStatus("Loading…");
    call("GET", "/dashboard/data/agents/" + encodeURIComponent(agent) + "/grade").then(function (data) {
      var p = data.performance;
      var card = el("section", { className: "grade-card", "aria-label": "Grade card" }, [
        el("p", { className: "grade", id: "grade", text: p.performanceGrade }),
        el("p", { className: "muted", text: "Last " + data.days + " days" + (p.score !== undefined && p.score !== null ? " · score " + p.score : "") })
      ]);
      var lists = el("div", { className: "columns" }, [
        el("section", null, [el("h2", { text: "Strengths" }), el("ul", { id: "strengths" }, (p.strengths || []).map(function (s) { return el("li", { text: s }); }))]),
        el("section", null, [el("h2", { text: "Improvement areas" }), el("ul", { id: "improvements" }, (p.improvementAreas || []).map(function (s) { return el("li", { text: s }); }))])
      ]);
      var metrics = el("div", { className: "columns" }, [
        metricList("Conversations", p.conversationMetrics, { totalConversations: "Conversations", customerSatisfactionAvg: "Satisfaction (1–5)", conversationCompletionRate: "Completion %", escalationRate: "Escalation %", averageResponseTime: "Avg response (ms)" }),
        metricList("Business", Object.assign({}, p.businessMetrics, { totalRevenue: money((p.businessMetrics || {}).totalRevenue, data.currency) }), { totalRevenue: "Revenue", conversionRate: "Conversion %", appointmentsBooked: "Appointments", appointmentCompletionRate: "Completed %", noShowRate: "No-show %" })
      ]);
      var trend = data.trend || [];
      var c = chartBox("Grade trend (30-day score, week by week)");
      content.appendChild(card);
      content.appendChild(lists);
      content.appendChild(metrics);
      content.appendChild(el("h2", { text: "Trend" }));
      content.appendChild(table(["30 days to", "Grade", "Score"], trend.map(function (w) { return [w.end, w.grade, w.score === null ? "—" : w.score]; }), "Grade over rolling 30-day windows, week by week"));
      content.appendChild(c.box);
      chart(c.canvas, { type: "line", data: { labels: trend.map(function (w) { return w.end; }), datasets: [{ label: "Score", data: trend.map(function (w) { return w.score; }) }] }, options: { scales: { y: { min: 0, max: 100 } } } });
      setStatus("");
    }).catch(failed);
  };

  pages.comparison = function () {
    setStatus("Loading…");
    call("GET", "/dashboard/data/comparison").then(function (data) {
      var s = data.summary || {};
      content.appendChild(metricList("Summary", Object.assign({}, s, { totalRevenue: money(s.totalRevenue, data.currency) }), { totalAgents: "Agents", avgSatisfaction: "Avg satisfaction", totalRevenue: "Revenue", avgConversionRate: "Avg conversion %" }));
      var rows = data.comparisons || [];
      content.appendChild(table(["Agent", "Grade", "Revenue", "Conversion %", "Satisfaction"], rows.map(function (r) {
        return [link("/dashboard/agents/" + encodeURIComponent(r.agentSlug), r.agentName || r.agentSlug), r.performanceGrade, money((r.businessMetrics || {}).totalRevenue, data.currency), (r.businessMetrics || {}).conversionRate, (r.conversationMetrics || {}).customerSatisfactionAvg];
      }), "Agents"));
      var c = chartBox("Revenue by agent");
      content.appendChild(c.box);
      chart(c.canvas, { type: "bar", data: { labels: rows.map(function (r) { return r.agentName || r.agentSlug; }), datasets: [{ label: "Revenue", data: rows.map(function (r) { return ((r.businessMetrics || {}).totalRevenue || 0) / 100; }) }] } });
      setStatus("");
    }).catch(failed);
  };

  function heatmap(data) {
    // data: {weekdays: ["mon", ...], conversations: [[24 counts] x 7], messages: [...]}
    var names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    var counts = (data && data.messages) || [];
    var max = 1;
    counts.forEach(function (row) { row.forEach(function (n) { if (n > max) { max = n; } }); });
    var hours = [];
    for (var h = 0; h < 24; h++) { hours.push(h); }
    var head = el("tr", null, [el("th", { text: "" })].concat(hours.map(function (h) { return el("th", { scope: "col", text: String(h) }); })));
    var rows = names.map(function (name, day) {
      return el("tr", null, [el("th", { scope: "row", text: name })].concat(hours.map(function (h) {
        var n = (counts[day] || [])[h] || 0;
        var td = el("td", { title: name + " " + h + ":00 — " + n, text: n ? String(n) : "" });
        td.style.backgroundColor = "rgba(31, 111, 235, " + (n / max).toFixed(2) + ")";
        return td;
      })));
    });
    return el("table", { className: "heatmap", id: "heatmap" }, [el("caption", { text: "Customer messages by weekday and hour" }), el("thead", null, [head]), el("tbody", null, rows)]);
  }

  pages.charts = function () {
    setStatus("Loading…");
    call("GET", "/dashboard/data/charts").then(function (data) {
      var revenue = chartBox("Revenue by day");
      var funnel = chartBox("Booking funnel");
      var mix = chartBox("Channel mix (conversations)");
      content.appendChild(el("div", { className: "chart-grid" }, [revenue.box, funnel.box, mix.box]));
      content.appendChild(heatmap(data.heatmap));
      var days = data.revenue || [];
      chart(revenue.canvas, { type: "line", data: { labels: days.map(function (d) { return d.date; }), datasets: [{ label: "Revenue (" + (data.currency || "") + ")", data: days.map(function (d) { return (d.amount || 0) / 100; }) }] } });
      var steps = data.funnel || [];
      chart(funnel.canvas, { type: "bar", data: { labels: steps.map(function (s) { return s.step; }), datasets: [{ label: "Conversations", data: steps.map(function (s) { return s.count; }) }] } });
      var channels = data.channels || [];
      chart(mix.canvas, { type: "doughnut", data: { labels: channels.map(function (c) { return c.channel; }), datasets: [{ data: channels.map(function (c) { return c.count; }) }] } });
      setStatus("");
    }).catch(failed);
  };

  // Messages the outbox gave up on; recipients come masked from the server, texts are data.
  pages.outbox = function () {
    var results = el("div", { id: "outbox" });
    content.appendChild(el("p", { className: "muted", text: "Messages that could not be delivered. Replay sends one again once the problem is fixed (the customer unblocked the bot, the channel is back)." }));
    content.appendChild(results);
    function replayButton(m) {
      var button = el("button", { type: "button", className: "replay", text: "Replay", "aria-label": "Replay message " + m.id, on: { click: function () {
        button.disabled = true;
        call("POST", "/dashboard/data/outbox/" + encodeURIComponent(m.id) + "/replay").then(function () {
          load("Queued again: it will be sent shortly.");
        }).catch(function (error) { button.disabled = false; failed(error); });
      } } });
      return button;
    }
    function load(done) {
      call("GET", "/dashboard/data/outbox").then(function (data) {
        clear(results);
        results.appendChild(data.messages.length ? table(["When", "Channel", "Recipient", "Customer", "Message", "Error", "Attempts", ""], data.messages.map(function (m) {
          return [when(m.createdAt), m.channel, m.recipient, link("/dashboard/conversations/" + encodeURIComponent(m.conversationId), m.customer || "(unknown)"),
            el("span", { className: "outbox-text", text: m.text }), m.error, m.attempts, replayButton(m)];
        }), "Failed deliveries") : el("p", { id: "outbox-empty", text: "Every message was delivered." }));
        setStatus(done || (data.messages.length + " failed deliver" + (data.messages.length === 1 ? "y" : "ies")));
      }).catch(failed);
    }
    load();
  };

  pages.alerts = function () {
    var list = el("div", { id: "alerts" });
    var muted = el("div", { id: "silences" });
    content.appendChild(list);
    content.appendChild(el("h2", { text: "Silences" }));
    content.appendChild(muted);
    function scopeText(s) { return Object.keys(s || {}).map(function (k) { return k + "=" + s[k]; }).join(", "); }
    function load() {
      call("GET", "/dashboard/data/alerts").then(function (data) {
        clear(list);
        clear(muted);
        list.appendChild(table(["Alert", "Severity", "Scope", "State", "Value / threshold", "Since", "Acknowledged", ""], data.alerts.map(function (a) {
          var actions = el("span", { className: "actions" });
          if (!a.acknowledgedAt && a.state !== "resolved") {
            actions.appendChild(el("button", { type: "button", className: "ack", text: "Acknowledge", on: { click: function () {
              call("POST", "/dashboard/data/alerts/" + encodeURIComponent(a.id) + "/acknowledge").then(load).catch(failed);
            } } }));
          }
          if (a.state !== "resolved") {
            actions.appendChild(el("button", { type: "button", className: "silence", text: "Silence 4 h", on: { click: function () {
              call("POST", "/dashboard/data/alerts/" + encodeURIComponent(a.id) + "/silence", null, { hours: 4 }).then(function () { setStatus("Silenced for 4 hours."); load(); }).catch(failed);
            } } }));
          }
          return [a.title, a.severity, scopeText(a.scope), a.state, (a.value === null ? "—" : a.value) + " / " + a.threshold, when(a.activeSince), a.acknowledgedAt ? when(a.acknowledgedAt) : "no", actions];
        }), "Alerts"));
        muted.appendChild(data.silences.length ? table(["Matches", "Until", ""], data.silences.map(function (s) {
          return [scopeText(s.matchers), when(s.endsAt), el("button", { type: "button", text: "End now", on: { click: function () {
            call("POST", "/dashboard/data/silences/" + encodeURIComponent(s.id) + "/expire").then(load).catch(failed);
          } } })];
        })) : el("p", { text: "No active silences." }));
        setStatus(data.alerts.length + " alert(s)");
      }).catch(failed);
    }
    load();
  };

  pages.rules = function () {
    var holder = el("div", { id: "rules" });
    content.appendChild(holder);
    function row(r) {
      var enabled = el("input", { type: "checkbox", "aria-label": r.title + " enabled" });
      enabled.checked = !!r.enabled;
      var threshold = el("input", { type: "number", step: "any", min: 0, value: r.threshold, "aria-label": r.title + " threshold" });
      var minVolume = el("input", { type: "number", step: 1, min: 0, value: r.minVolume, "aria-label": r.title + " minimum volume" });
      var severity = el("select", { "aria-label": r.title + " severity" }, ["warning", "critical"].map(function (s) { return el("option", { value: s, text: s, selected: s === r.severity }); }));
      var save = el("button", { type: "button", text: "Save", on: { click: function () {
        call("POST", "/dashboard/data/alert-rules/" + encodeURIComponent(r.rule), null, {
          enabled: enabled.checked, threshold: Number(threshold.value), min_volume: Number(minVolume.value), severity: severity.value
        }).then(function (data) { setStatus("Saved."); draw(data.rules); }).catch(failed);
      } } });
      var reset = el("button", { type: "button", text: "Back to defaults", disabled: !r.overridden.length, on: { click: function () {
        call("POST", "/dashboard/data/alert-rules/" + encodeURIComponent(r.rule), null, {}).then(function (data) { setStatus("Reset."); draw(data.rules); }).catch(failed);
      } } });
      return [r.title + " (" + r.direction + ", " + r.unit + ")", enabled, threshold, minVolume, severity, r.overridden.length ? "this business" : "config", el("span", { className: "actions" }, [save, reset])];
    }
    function draw(rules) {
      clear(holder);
      holder.appendChild(table(["Rule", "On", "Threshold", "Min. volume", "Severity", "From", ""], rules.map(row), "Alert rules"));
    }
    call("GET", "/dashboard/data/alert-rules").then(function (data) { draw(data.rules); setStatus(""); }).catch(failed);
  };

  if (pages[pageName]) { pages[pageName](); }
})();
