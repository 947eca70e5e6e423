/*! Parley chat widget. Embed: <script src="https://your-parley/widget.js" data-key="pub_..." async></script>
 * Docs: docs/widget.md. No dependencies. Every text from the server or the visitor is inserted with textContent,
 * never as HTML. The widget reads the thread's stream with fetch (not EventSource) so it can send the thread token
 * and Last-Event-ID as headers and resume after a drop without losing or repeating an event. */
(function () {
  'use strict';
  var script = document.currentScript;
  if (!script || !script.dataset) return;
  var config = script.dataset;
  var key = (config.key || '').trim();
  if (!key) { console.error('Parley widget: add data-key="pub_..." (a publishable key) to the script tag.'); return; }
  var server = (config.server || new URL(script.src, location.href).origin).replace(/\/+$/, '');
  var title = config.title || 'Chat';
  var placeholder = config.placeholder || 'Type a message…';
  var position = config.position === 'left' ? 'left' : 'right';
  var color = config.color && window.CSS && CSS.supports('color', config.color) ? config.color : '';
  var storageKey = 'parley:' + server + ':' + key;
  var HEARTBEAT_TIMEOUT_MS = 45000;
  var RETRY_DELAYS_MS = [500, 1000, 2000, 4000, 8000, 15000];

  // ---- storage (localStorage when the browser allows it, else memory for this page view) ----
  var memory = {};
  function loadSaved() {
    try { return JSON.parse(localStorage.getItem(storageKey) || 'null') || {}; } catch (e) { return memory; }
  }
  function save(value) {
    memory = value;
    try { localStorage.setItem(storageKey, JSON.stringify(value)); } catch (e) { /* private mode: keep it in memory */ }
  }
  var saved = loadSaved();
  var session = saved.threadId && saved.threadToken ? { threadId: saved.threadId, threadToken: saved.threadToken } : null;

  // ---- DOM (own shadow root: the host page's CSS cannot reach inside) ----
  var host = document.createElement('parley-widget');
  var root = host.attachShadow({ mode: 'open' });
  var style = document.createElement('style');
  style.textContent = [
    ':host{all:initial;--parley-accent:' + (color || '#2563eb') + ';--parley-text:#1f2328;--parley-muted:#59636e;--parley-bg:#fff;--parley-bubble:#eef1f5}',
    // Fonts and colours are set inside, on .shell: the page's rules for the host element itself win over :host.
    '.shell{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--parley-text)}',
    '*{box-sizing:border-box;font:inherit}',
    '.launcher{position:fixed;bottom:20px;' + position + ':20px;z-index:2147483000;width:56px;height:56px;border-radius:50%;border:0;background:var(--parley-accent);color:#fff;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25);display:flex;align-items:center;justify-content:center}',
    '.launcher:focus-visible,button:focus-visible,textarea:focus-visible{outline:3px solid #1f6feb;outline-offset:2px}',
    '.launcher svg{width:26px;height:26px;fill:currentColor}',
    '.badge{position:absolute;top:-2px;right:-2px;min-width:20px;height:20px;border-radius:10px;background:#d1242f;color:#fff;font-size:12px;line-height:20px;text-align:center;padding:0 5px}',
    '.panel{position:fixed;bottom:88px;' + position + ':20px;z-index:2147483000;width:370px;max-width:calc(100vw - 40px);height:560px;max-height:calc(100vh - 110px);background:var(--parley-bg);border-radius:14px;box-shadow:0 10px 40px rgba(0,0,0,.25);display:flex;flex-direction:column;overflow:hidden}',
    '.panel[hidden]{display:none}',
    'header{background:var(--parley-accent);color:#fff;padding:12px 12px 12px 16px;display:flex;align-items:center;gap:8px}',
    'h2{margin:0;font-size:16px;font-weight:600;flex:1;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}',
    '.close{background:transparent;border:0;color:#fff;width:32px;height:32px;border-radius:6px;cursor:pointer;font-size:22px;line-height:1}',
    '.status{font-size:13px;color:var(--parley-muted);padding:4px 16px;background:#fff8c5}',
    '.status:empty{display:none}',
    '.log{list-style:none;margin:0;padding:12px;flex:1;overflow-y:auto;display:flex;flex-direction:column;gap:8px}',
    '.msg{max-width:85%;padding:8px 12px;border-radius:14px;white-space:pre-wrap;overflow-wrap:anywhere}',
    '.msg.out{align-self:flex-start;background:var(--parley-bubble);border-bottom-left-radius:4px}',
    '.msg.in{align-self:flex-end;background:var(--parley-accent);color:#fff;border-bottom-right-radius:4px}',
    '.msg.pending{opacity:.7}',
    '.msg.failed{outline:1px solid #d1242f}',
    '.msg.failed button{display:block;margin-top:4px;background:#fff;color:#d1242f;border:1px solid #d1242f;border-radius:6px;padding:2px 8px;cursor:pointer;font-size:13px}',
    '.note{align-self:center;text-align:center;font-size:13px;color:var(--parley-muted);padding:2px 8px}',
    '.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}',
    '.typing{padding:0 16px 6px;color:var(--parley-muted);font-size:13px;display:flex;align-items:center;gap:6px}',
    '.typing[hidden]{display:none}',
    '.dots span{display:inline-block;width:6px;height:6px;margin-right:3px;border-radius:50%;background:var(--parley-muted);animation:blink 1.2s infinite}',
    '.dots span:nth-child(2){animation-delay:.2s}.dots span:nth-child(3){animation-delay:.4s}',
    '@keyframes blink{0%,80%,100%{opacity:.25}40%{opacity:1}}',
    '@media (prefers-reduced-motion:reduce){.dots span{animation:none}}',
    '.replies{display:flex;flex-wrap:wrap;gap:6px;padding:0 12px 8px}',
    '.replies:empty{display:none}',
    '.replies button{border:1px solid var(--parley-accent);color:var(--parley-accent);background:#fff;border-radius:16px;padding:5px 12px;cursor:pointer}',
    '.replies button:hover{background:var(--parley-accent);color:#fff}',
    'form{display:flex;gap:8px;padding:10px 12px;border-top:1px solid #e5e7eb;align-items:flex-end}',
    'textarea{flex:1;resize:none;border:1px solid #d0d7de;border-radius:10px;padding:8px 10px;max-height:120px;min-height:40px;color:var(--parley-text);background:#fff}',
    '.send{background:var(--parley-accent);color:#fff;border:0;border-radius:10px;padding:0 14px;height:40px;cursor:pointer;font-weight:600}',
    'button:disabled,textarea:disabled{opacity:.55;cursor:not-allowed}',
    '.restart{margin:10px 12px;background:var(--parley-accent);color:#fff;border:0;border-radius:10px;height:40px;cursor:pointer;font-weight:600}',
    '.restart[hidden],form[hidden]{display:none}',
    '@media (max-width:480px){.panel{inset:0;width:100%;max-width:none;height:100%;max-height:none;border-radius:0}.open .launcher{display:none}}'
  ].join('\n');

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var name in attrs || {}) node.setAttribute(name, attrs[name]);
    if (text != null) node.textContent = text;
    return node;
  }

  var shell = el('div', { 'class': 'shell' });
  var launcher = el('button', { 'class': 'launcher', type: 'button', 'aria-label': 'Open chat: ' + title, 'aria-expanded': 'false', 'aria-controls': 'parley-panel', 'aria-haspopup': 'dialog' });
  var svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  var path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  path.setAttribute('d', 'M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z');
  svg.appendChild(path);
  launcher.appendChild(svg);
  var badge = el('span', { 'class': 'badge', 'aria-hidden': 'true', hidden: '' });
  launcher.appendChild(badge);
  var panel = el('section', { 'class': 'panel', id: 'parley-panel', role: 'dialog', 'aria-modal': 'false', 'aria-labelledby': 'parley-title', hidden: '' });
  var header = el('header');
  var heading = el('h2', { id: 'parley-title' }, title);
  var closeButton = el('button', { 'class': 'close', type: 'button', 'aria-label': 'Close chat' }, '×');
  header.append(heading, closeButton);
  var status = el('div', { 'class': 'status', role: 'status', 'aria-live': 'polite' });
  var log = el('ol', { 'class': 'log', role: 'log', 'aria-live': 'polite', 'aria-label': 'Conversation with ' + title });
  var typing = el('div', { 'class': 'typing', role: 'status', hidden: '' });
  var dots = el('span', { 'class': 'dots', 'aria-hidden': 'true' });
  dots.append(el('span'), el('span'), el('span'));
  typing.append(dots, el('span', null, title + ' is typing…'));
  var replies = el('div', { 'class': 'replies', role: 'group', 'aria-label': 'Suggested replies' });
  var form = el('form');
  var label = el('label', { 'for': 'parley-input', 'class': 'sr' }, 'Message');
  var input = el('textarea', { id: 'parley-input', rows: '1', maxlength: '8000', placeholder: placeholder, autocomplete: 'off' });
  var sendButton = el('button', { 'class': 'send', type: 'submit' }, 'Send');
  form.append(label, input, sendButton);
  var restart = el('button', { 'class': 'restart', type: 'button', hidden: '' }, 'Start a new conversation');
  panel.append(header, status, log, typing, replies, form, restart);
  shell.append(launcher, panel);
  root.append(style, shell);

  // ---- state ----
  var lastEventId = 0;            // the last SSE id applied: a reconnect resumes after it
  var byId = {};                  // message id -> its <li>
  var pending = [];               // visitor messages sent but not yet seen on the stream
  var activeRuns = {};            // run id -> true while queued or running
  var streamingId = null;         // the outbound message whose deltas are arriving
  var closedThread = false;
  var started = false;
  var stream = null;              // AbortController of the current stream connection
  var wakeUp = null;              // resolves the reconnect wait early (the browser came back online)
  var unread = 0;

  function emit(name, detail) { host.dispatchEvent(new CustomEvent('parley:' + name, { bubbles: true, detail: detail || {} })); }
  function setStatus(text) { status.textContent = text || ''; }
  function scrollDown() { log.scrollTop = log.scrollHeight; }
  function isOpen() { return !panel.hidden; }

  function addBubble(direction, text, id) {
    var li = el('li', { 'class': 'msg ' + direction });
    li.append(el('span', { 'class': 'sr' }, direction === 'in' ? 'You: ' : title + ': '));
    li.append(el('span', { 'class': 'text' }, text));
    if (id) { li.dataset.id = id; byId[id] = li; }
    log.appendChild(li);
    scrollDown();
    return li;
  }
  function setText(li, text) { li.querySelector('.text').textContent = text; }
  function addNote(text) { var li = el('li', { 'class': 'note' }, text); log.appendChild(li); scrollDown(); return li; }

  function setReplies(choices) {
    replies.textContent = '';
    if (closedThread) return;
    (choices || []).forEach(function (choice) {
      var button = el('button', { type: 'button' }, choice);
      button.addEventListener('click', function () { send(choice); });
      replies.appendChild(button);
    });
  }

  function updateTyping() {
    var busy = false;
    for (var id in activeRuns) { busy = true; break; }
    typing.hidden = !busy || streamingId !== null || closedThread;
    log.setAttribute('aria-busy', streamingId !== null ? 'true' : 'false');
  }

  function setClosed(reason, quiet) {
    if (closedThread) return;
    closedThread = true;
    activeRuns = {};
    streamingId = null;
    updateTyping();
    setReplies([]);
    addNote('This conversation has ended.');
    form.hidden = true;
    restart.hidden = false;
    if (!quiet) emit('closed', { threadId: session && session.threadId, reason: reason || null });
  }

  var control = 'agent';
  function setControl(next, reason, quiet) {
    if (!next || next === control) return;
    control = next;
    if (next === 'human') {
      addNote('You are now talking with a person. They will answer here.');
      if (!quiet) emit('handoff', { threadId: session && session.threadId, reason: reason || null });
    } else {
      addNote('You are talking with ' + title + ' again.');
    }
  }

  function renderMessage(message, fromHistory) {
    var text = message.messageBody == null ? '' : String(message.messageBody);
    if (message.direction === 'INBOUND') {
      if (byId[message.id]) return;
      for (var i = 0; i < pending.length; i++) {
        if (!pending[i].id && pending[i].text === text) {
          pending[i].id = message.id;
          byId[message.id] = pending[i].li;
          pending[i].li.classList.remove('pending');
          pending.splice(i, 1);
          return;
        }
      }
      addBubble('in', text, message.id);
      return;
    }
    var li = byId[message.id];
    if (li) { setText(li, text); li.classList.remove('streaming'); }
    else li = addBubble('out', text, message.id);
    if (message.status === 'FAILED') li.classList.add('failed');
    if (streamingId === message.id) streamingId = null;
    setReplies(message.quickReplies);
    updateTyping();
    scrollDown();
    if (!fromHistory) {
      if (!isOpen()) { unread++; badge.textContent = String(unread); badge.hidden = false; }
      emit('message', { id: message.id, direction: 'OUTBOUND', text: text, quickReplies: message.quickReplies || [] });
    }
  }

  function appendDelta(messageId, delta) {
    var li = byId[messageId];
    if (!li) { li = addBubble('out', '', messageId); li.classList.add('streaming'); }
    if (!li.classList.contains('streaming')) return; // the completed message is already shown
    streamingId = messageId;
    var span = li.querySelector('.text');
    span.textContent = span.textContent + delta;
    setReplies([]);
    updateTyping();
    scrollDown();
  }

  function handleEvent(event) {
    if (event.id !== null) {
      var sequence = Number(event.id);
      if (!isFinite(sequence)) return;
      if (sequence <= lastEventId) return; // already applied: never show a piece twice
      lastEventId = sequence;
    }
    var data;
    try { data = JSON.parse(event.data); } catch (e) { return; }
    switch (event.type) {
      case 'message.created': renderMessage(data, false); break;
      case 'message.delta': appendDelta(data.messageId, data.delta || ''); break;
      case 'run.queued': case 'run.started': activeRuns[data.id] = true; updateTyping(); break;
      case 'run.completed': case 'run.cancelled': delete activeRuns[data.id]; updateTyping(); break;
      case 'run.failed':
        delete activeRuns[data.id];
        updateTyping();
        addNote('Sorry, something went wrong. Please try again.');
        break;
      case 'state.updated': if (data.state) setControl(data.state.control, data.state.handOffReason, false); break;
      case 'thread.closed': setClosed(data.closedReason, false); break;
    }
  }

  // ---- HTTP ----
  function apiUrl(path) {
    return server + '/api/v1/' + path + (path.indexOf('?') < 0 ? '?' : '&') + 'publishableKey=' + encodeURIComponent(key);
  }
  function headersFor(extra) {
    var headers = extra || {};
    if (session) headers['X-Thread-Token'] = session.threadToken;
    return headers;
  }
  function ApiError(status, message) { this.status = status; this.message = message; }
  function api(method, path, body) {
    var init = { method: method, headers: headersFor(body === undefined ? {} : { 'Content-Type': 'application/json' }), credentials: 'omit', cache: 'no-store' };
    if (body !== undefined) init.body = JSON.stringify(body);
    return fetch(apiUrl(path), init).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (data) {
        if (!response.ok) throw new ApiError(response.status, (data && data.message) || ('HTTP ' + response.status));
        return data;
      });
    });
  }
  function threadPath(suffix) { return 'threads/' + encodeURIComponent(session.threadId) + suffix; }
  function isGone(error) { return error && (error.status === 401 || error.status === 403 || error.status === 404); }
  function reportError(error, text) {
    setStatus(text);
    emit('error', { status: error && error.status || 0, message: error && error.message || String(error) });
  }

  // ---- the stream: fetch + a small WHATWG SSE parser ----
  function readEvents(body, onEvent, onBytes) {
    var reader = body.getReader();
    var decoder = new TextDecoder();
    var buffer = '', data = [], type = '', id = null;
    function line(text) {
      if (text === '') {
        if (data.length) onEvent({ id: id, type: type || 'message', data: data.join('\n') });
        data = []; type = ''; id = null;
        return;
      }
      if (text.charCodeAt(0) === 58) return; // ':' comment (heartbeat)
      var colon = text.indexOf(':');
      var field = colon < 0 ? text : text.slice(0, colon);
      var value = colon < 0 ? '' : text.slice(colon + 1);
      if (value.charCodeAt(0) === 32) value = value.slice(1);
      if (field === 'data') data.push(value);
      else if (field === 'event') type = value;
      else if (field === 'id' && value.indexOf('\u0000') < 0) id = value;
    }
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) return;
        onBytes();
        buffer += decoder.decode(chunk.value, { stream: true });
        var start = 0;
        for (var i = 0; i < buffer.length; i++) {
          var c = buffer.charCodeAt(i);
          if (c === 10) { line(buffer.slice(start, i)); start = i + 1; }
          else if (c === 13) {
            if (i + 1 === buffer.length) break; // a CR at the end may be half of CRLF: wait for more
            line(buffer.slice(start, i));
            if (buffer.charCodeAt(i + 1) === 10) i++;
            start = i + 1;
          }
        }
        buffer = buffer.slice(start);
        return pump();
      });
    }
    return pump();
  }

  function wait(ms) {
    return new Promise(function (resolve) {
      var timer = setTimeout(resolve, ms);
      wakeUp = function () { clearTimeout(timer); resolve(); };
    });
  }

  function connect() {
    if (stream || !session || closedThread) return;
    var controller = new AbortController();
    stream = controller;
    var attempt = 0;
    function loop() {
      if (controller.signal.aborted || closedThread || !session) { if (stream === controller) stream = null; return Promise.resolve(); }
      // One connection attempt; a silent connection (no heartbeat for 45 s) counts as dropped.
      var attemptAbort = new AbortController();
      controller.signal.addEventListener('abort', function () { attemptAbort.abort(); }, { once: true });
      var watchdog = null;
      function feed() { clearTimeout(watchdog); watchdog = setTimeout(function () { attemptAbort.abort(); }, HEARTBEAT_TIMEOUT_MS); }
      var headers = headersFor({ Accept: 'text/event-stream' });
      if (lastEventId > 0) headers['Last-Event-ID'] = String(lastEventId);
      var retryAfter = 0;
      return fetch(apiUrl(threadPath('/stream?events=all')), { headers: headers, credentials: 'omit', cache: 'no-store', signal: attemptAbort.signal })
        .then(function (response) {
          if (response.status === 204) { setStatus(''); setClosed(null, false); return; }
          if (!response.ok) {
            return response.json().catch(function () { return null; }).then(function (data) {
              var error = new ApiError(response.status, (data && data.message) || ('HTTP ' + response.status));
              if (response.status === 429) retryAfter = (Number(response.headers.get('Retry-After')) || 1) * 1000;
              throw error;
            });
          }
          setStatus('');
          feed();
          return readEvents(response.body, function (event) { attempt = 0; handleEvent(event); }, feed);
        })
        .catch(function (error) {
          if (controller.signal.aborted) return;
          if (isGone(error)) { controller.abort(); forget('This conversation is no longer available.'); emit('error', { status: error.status, message: error.message }); return; }
          if (error && error.status === 400) { controller.abort(); reportError(error, 'The chat could not connect: ' + error.message); return; }
        })
        .then(function () {
          clearTimeout(watchdog);
          if (controller.signal.aborted || closedThread) { if (stream === controller) stream = null; return; }
          // The connection ended or dropped: reconnect with Last-Event-ID after a growing, jittered pause.
          setStatus(navigator.onLine === false ? 'Offline. Waiting for the network…' : 'Reconnecting…');
          var delay = Math.max(retryAfter, RETRY_DELAYS_MS[Math.min(attempt, RETRY_DELAYS_MS.length - 1)] * (0.75 + Math.random() / 2));
          attempt++;
          return wait(delay).then(loop);
        });
    }
    loop();
  }

  function disconnect() {
    if (stream) { stream.abort(); stream = null; }
    if (wakeUp) wakeUp();
  }

  function clearConversation() {
    log.textContent = '';
    byId = {}; pending = []; activeRuns = {}; streamingId = null; lastEventId = 0; closedThread = false; control = 'agent';
    setReplies([]); updateTyping(); setStatus('');
    form.hidden = false; restart.hidden = true;
    if (config.greeting) addNote(config.greeting);
  }

  function forget(notice) {
    disconnect();
    session = null;
    save({ open: isOpen() });
    clearConversation();
    if (notice) setStatus(notice);
  }

  // ---- history after a reload ----
  function loadHistory() {
    var messages = [];
    function page(cursor) {
      return api('GET', threadPath('/messages?limit=100' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''))).then(function (data) {
        messages = messages.concat(data.messages || []);
        return data.nextCursor ? page(data.nextCursor) : messages;
      });
    }
    setStatus('Loading…');
    // No sending until the history is shown, so a new message cannot land above older ones.
    input.disabled = sendButton.disabled = true;
    function ready() { input.disabled = sendButton.disabled = false; }
    return api('GET', threadPath('')).then(function (data) {
      var thread = data.thread;
      emit('thread', { threadId: thread.id, created: false });
      return page(null).then(function (list) {
        setStatus('');
        list.forEach(function (m) {
          renderMessage(m, true);
          if (m.sequence > lastEventId) lastEventId = m.sequence;
        });
        if (list.length === 0 || list[list.length - 1].direction !== 'OUTBOUND') setReplies([]);
        if (thread.control === 'human') setControl('human', null, true);
        ready();
        if (!thread.isActive) setClosed(thread.closedReason, true);
        else connect(); // resumes after the last message: an answer in progress replays its pieces
      });
    }).catch(function (error) {
      ready();
      if (isGone(error)) { forget('This conversation is no longer available. Send a message to start a new one.'); emit('error', { status: error.status, message: error.message }); }
      else reportError(error, 'Could not load the conversation. Check your connection.');
    });
  }

  function start() {
    if (started) return;
    started = true;
    clearConversation();
    if (session) loadHistory();
  }

  // ---- sending ----
  function ensureThread() {
    if (session) return Promise.resolve();
    return api('POST', 'threads/web', { metadata: { source: 'widget' } }).then(function (data) {
      session = { threadId: data.thread.id, threadToken: data.threadToken };
      save({ threadId: session.threadId, threadToken: session.threadToken, open: isOpen() });
      lastEventId = 0;
      emit('thread', { threadId: session.threadId, created: true });
      connect();
    });
  }

  function send(text) {
    text = String(text || '');
    if (!text.trim() || closedThread) return;
    setReplies([]);
    var entry = { text: text, id: null, li: addBubble('in', text, null) };
    entry.li.classList.add('pending');
    pending.push(entry);
    emit('message', { id: null, direction: 'INBOUND', text: text });
    deliver(entry);
  }

  function deliver(entry) {
    var retry = entry.li.querySelector('button');
    if (retry) retry.remove();
    entry.li.classList.remove('failed');
    ensureThread().then(function () {
      return api('POST', threadPath('/messages'), { message: entry.text });
    }).then(function (data) {
      if (!entry.id) {
        if (byId[data.messageId]) { entry.li.remove(); } // the stream showed it first
        else { entry.id = data.messageId; byId[data.messageId] = entry.li; }
      }
      entry.li.classList.remove('pending');
      var index = pending.indexOf(entry);
      if (index >= 0) pending.splice(index, 1);
      setStatus('');
    }).catch(function (error) {
      if (error && error.status === 400 && /closed/.test(error.message)) {
        entry.li.classList.remove('pending');
        setClosed(null, false);
        return;
      }
      entry.li.classList.remove('pending');
      entry.li.classList.add('failed');
      var button = el('button', { type: 'button' }, 'Not sent. Retry');
      button.addEventListener('click', function () { entry.li.classList.add('pending'); deliver(entry); });
      entry.li.appendChild(button);
      reportError(error, error instanceof ApiError ? error.message : 'Could not reach the chat server.');
    });
  }

  // ---- open / close, keyboard ----
  // focus: false when the page restores an open panel on load, so the widget never steals the page's focus by itself.
  function open(focus) {
    if (isOpen()) return;
    panel.hidden = false;
    shell.classList.add('open');
    launcher.setAttribute('aria-expanded', 'true');
    launcher.setAttribute('aria-label', 'Close chat: ' + title);
    unread = 0; badge.hidden = true;
    start();
    var state = loadSaved(); state.open = true; save(state);
    if (focus !== false) input.focus();
    emit('open');
  }
  function close() {
    if (!isOpen()) return;
    panel.hidden = true;
    shell.classList.remove('open');
    launcher.setAttribute('aria-expanded', 'false');
    launcher.setAttribute('aria-label', 'Open chat: ' + title);
    var state = loadSaved(); state.open = false; save(state);
    launcher.focus();
    emit('close');
  }

  launcher.addEventListener('click', function () { isOpen() ? close() : open(true); });
  closeButton.addEventListener('click', close);
  panel.addEventListener('keydown', function (event) { if (event.key === 'Escape') { event.stopPropagation(); close(); } });
  form.addEventListener('submit', function (event) {
    event.preventDefault();
    var text = input.value;
    if (!text.trim()) return;
    input.value = '';
    send(text);
    input.focus();
  });
  input.addEventListener('keydown', function (event) {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) { event.preventDefault(); form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event('submit', { cancelable: true })); }
  });
  restart.addEventListener('click', function () { forget(); input.focus(); });
  window.addEventListener('online', function () { if (wakeUp) wakeUp(); });

  // ---- the element's API ----
  host.open = function () { open(true); };
  host.close = close;
  host.send = send;
  host.reset = function () { forget(); };

  function mount() {
    document.body.appendChild(host);
    if (session) start(); // a returning visitor: show the history and listen for replies
    if (config.open === 'true' || saved.open) open(false);
    emit('ready', { threadId: session && session.threadId || null });
  }
  if (document.body) mount(); else document.addEventListener('DOMContentLoaded', mount);
})();
