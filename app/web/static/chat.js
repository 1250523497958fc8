/* 回头客 local chat: a WeChat-like conversation with the assistant.
 *
 * Plain JS, no build step, no external assets. Every piece of message text goes
 * into the page with textContent (never innerHTML): customer names are user input.
 *
 * Protocol: POST {api_url} {"text", "client_msg_id"}
 *   -> {"replies": [{"text"}], "images": [{"data_url", "alt", "filename"}]}.
 * Images (report charts) are shown after the replies; only their alt text is kept in
 * sessionStorage (a reload shows the text, "统计图" draws a fresh one).
 * The server is idempotent per client_msg_id, so a message is always retried with
 * the id it was first sent with (automatic retries, the "点此重试" marker, a reload
 * while it was still on its way).
 */
(function () {
  "use strict";

  var root = document.getElementById("chat-app");
  if (!root) {
    return;
  }

  var API_URL = root.getAttribute("data-api-url") || "";
  var SLUG = root.getAttribute("data-shop-slug") || "default";
  var STORAGE_KEY = "huitou.chat.v1." + SLUG;
  var MAX_STORED = 300;
  var RETRY_DELAYS_MS = [400, 800, 1600]; // up to 3 retries after the first try
  var REQUEST_TIMEOUT_MS = 20000;
  var TIME_GAP_MS = 5 * 60 * 1000; // a centred time label after 5 minutes of quiet

  var listEl = document.getElementById("chat-messages");
  var formEl = document.getElementById("chat-form");
  var inputEl = document.getElementById("chat-input");
  var sendEl = document.getElementById("send-button");

  /* messages: {kind: "owner"|"bot"|"notice"|"image", text, ts, id?, status?, error?, src?}
   * owner status: "pending" | "sent" | "failed" | "rejected" */
  var messages = [];
  var ownerRows = {}; // client_msg_id -> row element
  var queue = []; // client_msg_ids waiting to be delivered, in order
  var queued = {};
  var busy = false;
  var typingRow = null;
  var lastRenderedTs = null;

  /* ---------- ids ---------- */

  function newClientMsgId() {
    var c = window.crypto;
    if (c && typeof c.randomUUID === "function") {
      try {
        return c.randomUUID();
      } catch (e) {
        /* not a secure context: fall through */
      }
    }
    var bytes = new Uint8Array(16);
    if (c && typeof c.getRandomValues === "function") {
      c.getRandomValues(bytes);
    } else {
      for (var i = 0; i < 16; i++) {
        bytes[i] = Math.floor(Math.random() * 256);
      }
    }
    var hex = "";
    for (var j = 0; j < 16; j++) {
      hex += (bytes[j] + 0x100).toString(16).slice(1);
    }
    return hex;
  }

  /* ---------- storage ---------- */

  function save() {
    try {
      var keep = messages.length > MAX_STORED ? messages.slice(-MAX_STORED) : messages;
      // Pictures are large: keep their alt text only.
      keep = keep.map(function (m) {
        return m.kind === "image" ? { kind: "image", text: m.text, ts: m.ts } : m;
      });
      window.sessionStorage.setItem(STORAGE_KEY, JSON.stringify(keep));
    } catch (e) {
      /* storage full or unavailable (private mode): the chat still works */
    }
  }

  function load() {
    var raw = null;
    try {
      raw = window.sessionStorage.getItem(STORAGE_KEY);
    } catch (e) {
      return [];
    }
    if (!raw) {
      return [];
    }
    var parsed;
    try {
      parsed = JSON.parse(raw);
    } catch (e) {
      return [];
    }
    if (!Array.isArray(parsed)) {
      return [];
    }
    var out = [];
    for (var i = 0; i < parsed.length; i++) {
      var m = parsed[i];
      if (!m || typeof m.text !== "string") {
        continue;
      }
      if (m.kind !== "owner" && m.kind !== "bot" && m.kind !== "notice" && m.kind !== "image") {
        continue;
      }
      if (m.kind === "owner" && typeof m.id !== "string") {
        continue;
      }
      out.push(m);
    }
    return out;
  }

  /* ---------- rendering ---------- */

  function pad2(n) {
    return n < 10 ? "0" + n : String(n);
  }

  function formatTime(ts) {
    var d = new Date(ts);
    var now = new Date();
    var hm = pad2(d.getHours()) + ":" + pad2(d.getMinutes());
    if (d.toDateString() === now.toDateString()) {
      return hm;
    }
    return d.getMonth() + 1 + "月" + d.getDate() + "日 " + hm;
  }

  function scrollToBottom() {
    listEl.scrollTop = listEl.scrollHeight;
  }

  function insert(el) {
    if (typingRow && typingRow.parentNode === listEl) {
      listEl.insertBefore(el, typingRow);
    } else {
      listEl.appendChild(el);
    }
  }

  function maybeTimeLabel(ts) {
    if (typeof ts !== "number") {
      return;
    }
    if (lastRenderedTs === null || ts - lastRenderedTs > TIME_GAP_MS) {
      var t = document.createElement("div");
      t.className = "chat-time";
      t.textContent = formatTime(ts);
      insert(t);
    }
    lastRenderedTs = ts;
  }

  function makeRow(kind) {
    var row = document.createElement("div");
    row.className = "msg-row " + kind;
    var avatar = document.createElement("div");
    avatar.className = "avatar";
    avatar.setAttribute("aria-hidden", "true");
    avatar.textContent = kind === "owner" ? "我" : "回";
    row.appendChild(avatar);
    return row;
  }

  function renderMessage(m) {
    maybeTimeLabel(m.ts);
    if (m.kind === "notice") {
      var n = document.createElement("div");
      n.className = "chat-notice" + (m.error ? " is-error" : "");
      n.setAttribute("data-testid", "system-notice");
      n.textContent = m.text;
      insert(n);
      return;
    }
    if (m.kind === "image") {
      renderImage(m);
      return;
    }
    var row = makeRow(m.kind);
    var bubble = document.createElement("div");
    bubble.className = "bubble";
    bubble.setAttribute("data-testid", m.kind === "owner" ? "msg-owner" : "msg-bot");
    bubble.textContent = m.text;
    row.appendChild(bubble);
    insert(row);
    if (m.kind === "owner") {
      row.setAttribute("data-client-msg-id", m.id);
      ownerRows[m.id] = row;
      updateOwnerRow(m);
    }
  }

  /* A picture from the bot; after a reload (no src kept) its alt text stands in. */
  function renderImage(m) {
    var row = makeRow("bot");
    var bubble = document.createElement("div");
    bubble.className = "bubble bubble-image";
    bubble.setAttribute("data-testid", "msg-image");
    if (typeof m.src === "string" && m.src.indexOf("data:image/png;base64,") === 0) {
      var img = document.createElement("img");
      img.className = "chat-image";
      img.alt = m.text;
      img.src = m.src;
      img.addEventListener("load", scrollToBottom);
      bubble.appendChild(img);
    } else {
      bubble.textContent = "🖼 " + m.text;
    }
    row.appendChild(bubble);
    insert(row);
  }

  function updateOwnerRow(m) {
    var row = ownerRows[m.id];
    if (!row) {
      return;
    }
    row.classList.toggle("is-pending", m.status === "pending");
    row.setAttribute("data-status", m.status || "sent");
    var marker = row.querySelector(".msg-fail");
    if (m.status === "failed") {
      if (!marker) {
        marker = document.createElement("button");
        marker.type = "button";
        marker.className = "msg-fail";
        marker.setAttribute("data-testid", "send-failed");
        marker.textContent = "发送失败,点此重试";
        marker.addEventListener("click", function () {
          retryOwner(m.id);
        });
        row.appendChild(marker); // row is reversed: shows left of the bubble
      }
    } else if (marker) {
      marker.parentNode.removeChild(marker);
    }
  }

  function showTyping(on) {
    if (on && !typingRow) {
      typingRow = makeRow("bot");
      typingRow.classList.add("typing");
      typingRow.setAttribute("data-testid", "typing");
      typingRow.setAttribute("aria-label", "助手正在输入");
      var bubble = document.createElement("div");
      bubble.className = "bubble";
      bubble.textContent = "…";
      typingRow.appendChild(bubble);
      listEl.appendChild(typingRow);
      scrollToBottom();
    } else if (!on && typingRow) {
      if (typingRow.parentNode) {
        typingRow.parentNode.removeChild(typingRow);
      }
      typingRow = null;
    }
  }

  function addMessage(m) {
    messages.push(m);
    renderMessage(m);
    save();
    scrollToBottom();
  }

  function findOwner(id) {
    for (var i = messages.length - 1; i >= 0; i--) {
      if (messages[i].kind === "owner" && messages[i].id === id) {
        return messages[i];
      }
    }
    return null;
  }

  /* ---------- network ---------- */

  function sleep(ms) {
    return new Promise(function (resolve) {
      window.setTimeout(resolve, ms);
    });
  }

  function detailText(body, status) {
    var d = body && body.detail;
    if (typeof d === "string" && d.trim()) {
      return d;
    }
    if (Array.isArray(d) && d.length) {
      var parts = [];
      for (var i = 0; i < d.length; i++) {
        if (d[i] && typeof d[i].msg === "string") {
          parts.push(d[i].msg);
        } else if (typeof d[i] === "string") {
          parts.push(d[i]);
        }
      }
      if (parts.length) {
        return parts.join(";");
      }
    }
    return "消息没有发出去(错误 " + status + ")";
  }

  /* One attempt. Resolves to {ok, replies} | {rejected, detail} | {retry}. */
  function postOnce(m) {
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var timer = controller
      ? window.setTimeout(function () {
          controller.abort();
        }, REQUEST_TIMEOUT_MS)
      : null;
    return fetch(API_URL, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({ text: m.text, client_msg_id: m.id }),
      signal: controller ? controller.signal : undefined,
    })
      .then(function (res) {
        if (res.ok) {
          return res.json().then(
            function (body) {
              if (!body || !Array.isArray(body.replies)) {
                return { retry: true };
              }
              var replies = [];
              for (var i = 0; i < body.replies.length; i++) {
                var r = body.replies[i];
                var text = r && typeof r === "object" ? r.text : r;
                if (typeof text === "string") {
                  replies.push(text);
                }
              }
              var images = [];
              var raw = Array.isArray(body.images) ? body.images : [];
              for (var j = 0; j < raw.length; j++) {
                var im = raw[j];
                if (im && typeof im.data_url === "string" && typeof im.alt === "string") {
                  images.push({ src: im.data_url, alt: im.alt });
                }
              }
              return { ok: true, replies: replies, images: images };
            },
            function () {
              return { retry: true };
            }
          );
        }
        if (res.status === 401) {
          /* Signed out (退出网页版, expired): leave no conversation behind on this device. */
          try {
            window.sessionStorage.removeItem(STORAGE_KEY);
          } catch (e) {
            /* storage unavailable */
          }
        }
        if (res.status >= 400 && res.status < 500) {
          return res.json().then(
            function (body) {
              return { rejected: true, detail: detailText(body, res.status) };
            },
            function () {
              return { rejected: true, detail: detailText(null, res.status) };
            }
          );
        }
        return { retry: true }; // 5xx and anything unexpected
      })
      .catch(function () {
        return { retry: true }; // network error, timeout
      })
      .then(function (result) {
        if (timer !== null) {
          window.clearTimeout(timer);
        }
        return result;
      });
  }

  function deliver(m) {
    var attempt = 0;
    function tryOnce() {
      return postOnce(m).then(function (result) {
        if (result.retry && attempt < RETRY_DELAYS_MS.length) {
          var delay = RETRY_DELAYS_MS[attempt];
          attempt += 1;
          return sleep(delay).then(tryOnce);
        }
        return result;
      });
    }
    return tryOnce().then(function (result) {
      if (result.ok) {
        m.status = "sent";
        updateOwnerRow(m);
        save();
        for (var i = 0; i < result.replies.length; i++) {
          addMessage({ kind: "bot", text: result.replies[i], ts: Date.now() });
        }
        for (var k = 0; k < result.images.length; k++) {
          var image = result.images[k];
          addMessage({ kind: "image", text: image.alt, src: image.src, ts: Date.now() });
        }
      } else if (result.rejected) {
        m.status = "rejected";
        updateOwnerRow(m);
        addMessage({ kind: "notice", text: result.detail, error: true, ts: Date.now() });
      } else {
        m.status = "failed";
        updateOwnerRow(m);
        save();
        scrollToBottom();
      }
    });
  }

  function pump() {
    if (busy) {
      return;
    }
    if (!queue.length) {
      showTyping(false);
      return;
    }
    var id = queue.shift();
    delete queued[id];
    var m = findOwner(id);
    if (!m) {
      pump();
      return;
    }
    busy = true;
    showTyping(true);
    deliver(m)
      .catch(function () {
        m.status = "failed";
        updateOwnerRow(m);
        save();
      })
      .then(function () {
        busy = false;
        pump();
      });
  }

  function enqueue(id) {
    if (queued[id]) {
      return;
    }
    queued[id] = true;
    queue.push(id);
    pump();
  }

  function retryOwner(id) {
    var m = findOwner(id);
    if (!m || m.status === "pending") {
      return;
    }
    m.status = "pending";
    updateOwnerRow(m);
    save();
    enqueue(id);
  }

  /* ---------- sending ---------- */

  function send(text) {
    if (typeof text !== "string" || !text.trim()) {
      return false;
    }
    var m = { kind: "owner", id: newClientMsgId(), text: text, status: "pending", ts: Date.now() };
    addMessage(m);
    enqueue(m.id);
    return true;
  }

  function autosize() {
    inputEl.style.height = "auto";
    inputEl.style.height = Math.min(inputEl.scrollHeight, 120) + "px";
    sendEl.classList.toggle("is-empty", !inputEl.value.trim());
  }

  function sendFromInput() {
    if (send(inputEl.value.trim())) {
      inputEl.value = "";
    }
    autosize();
  }

  formEl.addEventListener("submit", function (ev) {
    ev.preventDefault();
    sendFromInput();
    inputEl.focus();
  });

  inputEl.addEventListener("keydown", function (ev) {
    // Enter sends; Shift+Enter is a new line; Enter that confirms a pinyin
    // candidate (IME composition) must not send.
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
      ev.preventDefault();
      sendFromInput();
    }
  });

  inputEl.addEventListener("input", autosize);

  var chips = document.querySelectorAll("[data-testid='suggestion']");
  for (var c = 0; c < chips.length; c++) {
    chips[c].addEventListener("click", function (ev) {
      var el = ev.currentTarget;
      send(el.getAttribute("data-text") || el.textContent || "");
    });
  }

  /* ---------- start ---------- */

  messages = load();
  for (var k = 0; k < messages.length; k++) {
    renderMessage(messages[k]);
  }
  // A message still on its way when the page went away is sent again with its
  // own id: the server answers a repeat exactly as it answered the first time.
  for (var p = 0; p < messages.length; p++) {
    if (messages[p].kind === "owner" && messages[p].status === "pending") {
      enqueue(messages[p].id);
    }
  }
  autosize();
  scrollToBottom();
})();
