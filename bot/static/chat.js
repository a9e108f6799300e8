// frontdesk web chat. Protocol: see bot/webchat.py. No framework, no CDN.
// Every text from the server is inserted with textContent (never innerHTML); links are drawn only
// for http(s) URLs, with rel="noopener" and target="_blank".
(function () {
  "use strict";

  var parts = window.location.pathname.replace(/\/+$/, "").split("/");
  var agent = decodeURIComponent(parts[parts.length - 1] || "");
  var storageKey = "frontdesk.chat." + agent + ".token";

  var log = document.getElementById("chat-log");
  var form = document.getElementById("chat-form");
  var input = document.getElementById("chat-input");
  var typing = document.getElementById("chat-typing");
  var statusLine = document.getElementById("chat-status");
  var title = document.getElementById("chat-title");

  var socket = null;
  var attempt = 0;
  var watermark = 0; // the highest seq drawn: a reconnect resumes after it
  var drawn = {}; // seq -> <li>, to drop duplicates (a second tab, a replay, the poll backstop)
  var queue = []; // frames typed while the socket was down, sent after the next resume
  var ready = false;
  var reconnectTimer = null;

  function readToken() {
    try {
      return window.localStorage.getItem(storageKey);
    } catch (e) {
      return null;
    }
  }

  function keepToken(token) {
    try {
      window.localStorage.setItem(storageKey, token);
    } catch (e) {
      /* storage blocked: the HttpOnly cookie still identifies us */
    }
  }

  function timeZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || null;
    } catch (e) {
      return null;
    }
  }

  function setStatus(text) {
    statusLine.textContent = text;
  }

  function socketUrl() {
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    var url = scheme + "//" + window.location.host + "/ws/chat/" + encodeURIComponent(agent);
    var token = readToken();
    return token ? url + "?token=" + encodeURIComponent(token) : url;
  }

  function connect() {
    reconnectTimer = null;
    ready = false;
    setStatus(attempt ? "Reconnecting…" : "Connecting…");
    var ws;
    try {
      ws = new WebSocket(socketUrl());
    } catch (e) {
      scheduleReconnect();
      return;
    }
    socket = ws;
    ws.onmessage = function (event) {
      var frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (frame && typeof frame === "object") {
        receive(ws, frame);
      }
    };
    ws.onclose = function () {
      if (socket === ws) {
        socket = null;
        ready = false;
        showTyping(false);
        scheduleReconnect();
      }
    };
  }

  function scheduleReconnect() {
    if (reconnectTimer !== null) {
      return;
    }
    attempt += 1;
    // exponential backoff with full jitter, capped at 30 s
    var ceiling = Math.min(30000, 500 * Math.pow(2, Math.min(attempt, 10)));
    var delay = Math.floor(ceiling / 2 + Math.random() * (ceiling / 2));
    setStatus("Offline — reconnecting…");
    reconnectTimer = window.setTimeout(connect, delay);
  }

  function send(frame) {
    if (socket && ready && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(frame));
    } else {
      queue.push(frame);
    }
  }

  function receive(ws, frame) {
    switch (frame.type) {
      case "hello":
        if (typeof frame.token === "string") {
          keepToken(frame.token);
        }
        if (typeof frame.name === "string" && frame.name) {
          title.textContent = frame.name;
          document.title = frame.name;
        }
        ws.send(
          JSON.stringify({ type: "resume", after: watermark, tz: timeZone(), locale: navigator.language || null })
        );
        ready = true;
        attempt = 0;
        setStatus("Online");
        while (queue.length) {
          ws.send(JSON.stringify(queue.shift()));
        }
        break;
      case "message":
        draw(frame);
        break;
      case "typing":
        showTyping(frame.on === true);
        break;
      case "error":
        problem(frame.code);
        break;
      default:
        break;
    }
  }

  function showTyping(on) {
    typing.hidden = !on;
    if (on) {
      scrollDown();
    }
  }

  function problem(code) {
    var text =
      code === "too_large"
        ? "That message is too long to send."
        : code === "malformed"
          ? "That message could not be sent."
          : "Something went wrong. Please try again.";
    dropPending();
    var item = document.createElement("li");
    item.className = "msg msg-note";
    item.setAttribute("role", "alert");
    item.textContent = text;
    log.appendChild(item);
    scrollDown();
  }

  function safeUrl(url) {
    if (typeof url !== "string") {
      return null;
    }
    try {
      var parsed = new URL(url);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (e) {
      return null;
    }
  }

  function draw(message) {
    var seq = message.seq;
    if (typeof seq !== "number" || drawn[seq]) {
      return;
    }
    var incoming = message.direction === "in";
    var item = document.createElement("li");
    var author = String(message.author || "bot").replace(/[^a-z_-]/g, "");
    item.className = "msg " + (incoming ? "msg-in" : "msg-out msg-" + author);
    item.dataset.seq = String(seq);

    var text = document.createElement("p");
    text.className = "msg-text";
    text.textContent = String(message.text || "");
    item.appendChild(text);

    var href = message.link ? safeUrl(message.link.url) : null;
    if (href) {
      var link = document.createElement("a");
      link.className = "msg-link";
      link.href = href;
      link.rel = "noopener noreferrer";
      link.target = "_blank";
      link.textContent = String(message.link.label || href);
      item.appendChild(link);
    }

    var options = Array.isArray(message.options) ? message.options : [];
    if (options.length) {
      var group = document.createElement("div");
      group.className = "msg-options";
      group.setAttribute("role", "group");
      group.setAttribute("aria-label", "Quick replies");
      options.forEach(function (option) {
        if (!option || typeof option.id !== "string") {
          return;
        }
        var button = document.createElement("button");
        button.type = "button";
        button.className = "option";
        button.textContent = String(option.label || option.id);
        if (option.description) {
          button.title = String(option.description);
        }
        button.addEventListener("click", function () {
          choose(group, button, option);
        });
        group.appendChild(button);
      });
      item.appendChild(group);
    }

    if (typeof message.at === "string") {
      var when = new Date(message.at);
      if (!isNaN(when.getTime())) {
        var stamp = document.createElement("time");
        stamp.className = "msg-time";
        stamp.dateTime = message.at;
        stamp.textContent = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
        item.appendChild(stamp);
      }
    }

    // keep seq order even if a frame arrives late
    var before = null;
    for (var node = log.lastElementChild; node; node = node.previousElementSibling) {
      if (node.dataset.seq && Number(node.dataset.seq) < seq) {
        break;
      }
      if (node.dataset.seq && Number(node.dataset.seq) > seq) {
        before = node;
      }
    }
    if (incoming) {
      dropPending();
    }
    log.insertBefore(item, before ? before : firstPending());
    drawn[seq] = item;
    if (seq > watermark) {
      watermark = seq;
    }
    if (incoming) {
      disableOptionsBefore(seq);
    }
    scrollDown();
  }

  function firstPending() {
    return log.querySelector(".msg-pending");
  }

  function dropPending() {
    var pending = firstPending();
    if (pending) {
      pending.remove();
    }
  }

  function showPending(text) {
    var item = document.createElement("li");
    item.className = "msg msg-in msg-pending";
    var body = document.createElement("p");
    body.className = "msg-text";
    body.textContent = text;
    item.appendChild(body);
    log.appendChild(item);
    scrollDown();
  }

  function disableOptionsBefore(seq) {
    Object.keys(drawn).forEach(function (key) {
      if (Number(key) < seq) {
        drawn[key].querySelectorAll("button.option").forEach(function (button) {
          button.disabled = true;
        });
      }
    });
  }

  function choose(group, button, option) {
    group.querySelectorAll("button").forEach(function (other) {
      other.disabled = true;
    });
    button.setAttribute("aria-pressed", "true");
    var label = String(option.label || option.id);
    showPending(label);
    send({ type: "choice", id: option.id, label: label });
  }

  function scrollDown() {
    log.scrollTop = log.scrollHeight;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) {
      return;
    }
    input.value = "";
    showPending(text);
    send({ type: "text", text: text });
  });

  window.addEventListener("online", function () {
    if (!socket && reconnectTimer !== null) {
      window.clearTimeout(reconnectTimer);
      reconnectTimer = null;
      connect();
    }
  });

  connect();
})();
