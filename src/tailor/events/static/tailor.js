/*
 * tailor.js: Tailor's event tracker for shop pages. Dependency-free ES2017, no build step.
 *
 *   <script src="https://COLLECTOR/tailor.js"></script>
 *   <script>tailor.init({endpoint: "https://COLLECTOR/v1/events", key: "tlr_pk_..."});</script>
 *
 * Reads and writes localStorage only (keys prefixed "tailor:"): the anonymous id, the
 * customer id after identify(), the session (id + last activity), opt-out and consent
 * flags, and the queue of events not yet acknowledged. Sends batches to the collector.
 *
 * - Every event gets a random 128-bit event_id here, so a retried batch is stored once.
 * - customer_id is the anonymous id until identify(customerId); every event also carries
 *   properties.anonymous_id, and identify() sends a `click` event with
 *   properties.action = "identify", so the platform can join anonymous and known history.
 *   identify(customerId, {signature}) keeps the shop's signature of the id and sends it
 *   with that customer's events as properties.identity_signature.
 * - A session ends after events.session_gap_minutes (default 30) minutes without events;
 *   the next event starts a new one.
 * - The page_view of a page is held until the page is hidden and then sent with
 *   properties.time_on_page (seconds the page was visible). A page that dies without
 *   being hidden has its page_view sent, without the time, by a later page of the shop
 *   once it has not been refreshed for a minute (open tabs refresh theirs on every tick).
 * - Batches go out every `batchSize` events or `flushIntervalMs`, by fetch (key in the
 *   X-Tailor-Key header) with exponential back-off on failure; on page hide everything
 *   waiting goes by navigator.sendBeacon (key in the ?key= query: beacons cannot set
 *   headers). Events stay in localStorage until the collector acknowledges them (fetch)
 *   or the browser accepts the beacon; the queue is bounded (oldest dropped first).
 * - Nothing is recorded or sent after optOut() (persisted) or, when the shop sets
 *   consentRequired, before consent(true).
 * - optOut() and optIn() also tell the collector (POST <endpoint's folder>/opt-out or
 *   /opt-in with the public key), for this browser's anonymous id and, once identify() was
 *   called, the customer id with its signature: the platform then stops personalising,
 *   tracking and mailing that customer everywhere, not only in this browser. The call is
 *   kept in localStorage ("tailor:choice") and sent again on later pages until the
 *   collector answers it; after optIn() no event is sent before the opt-in is taken (the
 *   collector would drop them). flush() sends what waits, that choice first (in an
 *   opted-out browser only the choice), so a page can await it before asking for lists.
 */
(function (global) {
  "use strict";

  const PREFIX = "tailor:";
  // events.session_gap_minutes: the collector writes the setting in when it serves this file
  const SESSION_GAP_MINUTES = 30;
  const SESSION_IDLE_MS = SESSION_GAP_MINUTES * 60 * 1000;
  const BEACON_MAX_BYTES = 60000; // browsers cap beacon and keepalive bodies at 64 KiB
  const CONTRACT_FIELDS = ["product_id", "price", "quantity", "order_id", "query", "device_type"];
  const RETRYABLE = [0, 401, 403, 408, 425, 429, 500, 502, 503, 504];
  const ORPHAN_AFTER_MS = 60000; // a held page_view not refreshed this long lost its page
  const CHOICE_RETRY = [0, 401, 408, 425, 429]; // answers after which an opt-out/in is sent again
  const CHOICE_FIELDS = ["anonymous_id", "customer_id", "identity_signature"];

  const DEFAULTS = {
    endpoint: "/v1/events",
    key: "",
    consentRequired: false,
    batchSize: 10,
    flushIntervalMs: 5000,
    maxBatchEvents: 100,
    maxQueue: 1000,
    retryBaseMs: 1000,
    retryMaxMs: 60000,
    autoPageView: true,
  };

  const memory = {}; // stands in for localStorage where it is unavailable (private modes)
  const state = {
    config: Object.assign({}, DEFAULTS),
    started: false,
    pageViewId: null,
    visibleSince: null,
    visibleMs: 0,
    lastTimestamp: 0,
    sending: false,
    inFlight: new Set(), // event ids of the fetch under way
    retryDelayMs: 0,
    retryTimer: null,
    dropped: 0,
    choiceSend: null, // the opt-out or opt-in call under way (a promise)
  };

  // -- storage ---------------------------------------------------------------------------

  function read(name) {
    try {
      return global.localStorage.getItem(PREFIX + name);
    } catch (error) {
      return Object.prototype.hasOwnProperty.call(memory, name) ? memory[name] : null;
    }
  }

  function write(name, value) {
    try {
      if (value === null) global.localStorage.removeItem(PREFIX + name);
      else global.localStorage.setItem(PREFIX + name, value);
    } catch (error) {
      if (value === null) delete memory[name];
      else memory[name] = value;
    }
  }

  function readJson(name, fallback) {
    try {
      const value = JSON.parse(read(name));
      return value === null ? fallback : value;
    } catch (error) {
      return fallback;
    }
  }

  // -- identity, session, time -------------------------------------------------------------

  function randomId() {
    const bytes = new Uint8Array(16);
    global.crypto.getRandomValues(bytes);
    return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  }

  function anonymousId() {
    let id = read("anonymous_id");
    if (!id) {
      id = "anon-" + randomId();
      write("anonymous_id", id);
    }
    return id;
  }

  function customerId() {
    return read("customer_id") || anonymousId();
  }

  /** The current session id; a new one after SESSION_GAP_MINUTES idle. Marks activity now. */
  function sessionId(now) {
    let session = readJson("session", null);
    if (!session || typeof session.id !== "string" || now - session.last > SESSION_IDLE_MS) {
      session = { id: "s-" + randomId(), last: now };
    }
    session.last = now;
    write("session", JSON.stringify(session));
    return session.id;
  }

  /** Milliseconds now, strictly increasing within the page so event order survives ties. */
  function monotonicNow() {
    const now = Math.max(Date.now(), state.lastTimestamp + 1);
    state.lastTimestamp = now;
    return now;
  }

  // -- permission ---------------------------------------------------------------------------

  function optedOut() {
    return read("opt_out") === "1";
  }

  function allowed() {
    if (optedOut()) return false;
    return !state.config.consentRequired || read("consent") === "granted";
  }

  // -- the shopper's choice at the collector ------------------------------------------------

  /** The collector's opt-out / opt-in URL: beside the events endpoint (or choiceEndpoint). */
  function choiceUrl(action) {
    const base = state.config.choiceEndpoint || state.config.endpoint.replace(/events\/?(\?.*)?$/, "");
    return base + (base.endsWith("/") ? "" : "/") + action;
  }

  /** Send the pending opt-out or opt-in (or join the send under way); it stays pending
   *  until the collector answers it. */
  function sendChoice() {
    if (!state.choiceSend) {
      state.choiceSend = postChoice().finally(() => {
        state.choiceSend = null;
      });
    }
    return state.choiceSend;
  }

  async function postChoice() {
    const action = read("choice");
    if (!action || !state.started || !global.fetch) return;
    const body = {};
    CHOICE_FIELDS.forEach((name) => {
      const value = read(name);
      if (value) body[name] = value;
    });
    if (!body.anonymous_id && !body.customer_id) {
      write("choice", null); // never tracked: nothing the collector could know of
      return;
    }
    let status = 0;
    try {
      const response = await global.fetch(choiceUrl(action), {
        method: "POST",
        keepalive: true,
        headers: { "Content-Type": "application/json", "X-Tailor-Key": state.config.key },
        body: JSON.stringify(body),
      });
      status = response.status;
    } catch (error) {
      status = 0; // offline: sent again on the next tick or page
    }
    if (CHOICE_RETRY.indexOf(status) < 0 && status < 500 && read("choice") === action) {
      write("choice", null);
      if (status !== 200 && global.console) global.console.warn("tailor: " + action + " refused, HTTP " + status);
    }
  }

  // -- the queue ------------------------------------------------------------------------------

  function loadQueue() {
    const items = readJson("queue", []);
    return Array.isArray(items) ? items.filter((item) => item && item.event) : [];
  }

  function saveQueue(items) {
    write("queue", items.length ? JSON.stringify(items) : null);
  }

  function enqueue(event, held) {
    const items = loadQueue();
    items.push(held ? { event: event, held: true, seen: Date.now() } : { event: event, held: false });
    while (items.length > state.config.maxQueue) {
      const oldest = items.findIndex((item) => !item.held);
      items.splice(oldest < 0 ? 0 : oldest, 1);
      state.dropped += 1;
    }
    saveQueue(items);
  }

  function removeFromQueue(eventIds) {
    const gone = new Set(eventIds);
    saveQueue(loadQueue().filter((item) => !gone.has(item.event.event_id)));
  }

  function sendable() {
    return loadQueue().filter((item) => !item.held).map((item) => item.event);
  }

  // -- building events ---------------------------------------------------------------------------

  function buildEvent(eventType, props) {
    const now = monotonicNow();
    const properties = Object.assign({}, props || {});
    const event = {
      event_id: randomId(),
      event_type: eventType,
      customer_id: customerId(),
      session_id: sessionId(now),
      timestamp: new Date(now).toISOString(),
    };
    CONTRACT_FIELDS.forEach((name) => {
      if (properties[name] !== undefined && properties[name] !== null) event[name] = properties[name];
      delete properties[name];
    });
    properties.anonymous_id = anonymousId();
    const signature = read("identity_signature");
    if (signature && event.customer_id === read("customer_id")) properties.identity_signature = signature;
    properties.page = global.location ? global.location.pathname : undefined;
    event.properties = properties;
    return event;
  }

  /** Record one event; returns its event_id, or null when tracking is not allowed. */
  function track(eventType, props) {
    if (!allowed()) return null;
    const event = buildEvent(eventType, props);
    enqueue(event, false);
    if (sendable().length >= state.config.batchSize) flush();
    return event.event_id;
  }

  function pageView(props) {
    if (!allowed()) return null;
    const referrer = global.document && global.document.referrer;
    const extra = {};
    if (referrer) {
      try {
        extra.referrer_host = new URL(referrer).host; // the host only: paths may hold PII
      } catch (error) { /* not a URL: leave it out */ }
    }
    const event = buildEvent("page_view", Object.assign(extra, props || {}));
    state.pageViewId = event.event_id;
    state.visibleMs = 0;
    state.visibleSince = isVisible() ? Date.now() : null;
    enqueue(event, true); // held until the page is hidden, to carry time_on_page
    return event.event_id;
  }

  /** Send the held page_view with the seconds the page was visible. */
  function releasePageView() {
    if (!state.pageViewId) return;
    if (state.visibleSince !== null) state.visibleMs += Date.now() - state.visibleSince;
    state.visibleSince = null;
    const items = loadQueue();
    items.forEach((item) => {
      if (item.held && item.event.event_id === state.pageViewId) {
        item.held = false;
        item.event.properties.time_on_page = Math.round(state.visibleMs / 100) / 10;
      }
    });
    saveQueue(items);
    state.pageViewId = null;
  }

  /**
   * Keep this page's held page_view marked as alive, and send, without a time, those held
   * by pages that died without being hidden (not seen for ORPHAN_AFTER_MS). Pages in other
   * tabs that are still open keep theirs: they refresh `seen` on every tick.
   */
  function tendHeldPageViews() {
    const items = loadQueue();
    if (!items.some((item) => item.held)) return;
    const now = Date.now();
    const orphanAfter = Math.max(ORPHAN_AFTER_MS, 3 * state.config.flushIntervalMs);
    items.forEach((item) => {
      if (!item.held) return;
      if (item.event.event_id === state.pageViewId) item.seen = now;
      else if (!(now - item.seen < orphanAfter)) item.held = false;
    });
    saveQueue(items);
  }

  // -- sending ------------------------------------------------------------------------------------

  function byteLength(text) {
    return global.TextEncoder ? new global.TextEncoder().encode(text).length : text.length * 3;
  }

  function batches(events, maxBytes) {
    const result = [];
    let current = [];
    let bytes = 64;
    events.forEach((event) => {
      const size = byteLength(JSON.stringify(event)) + 1;
      if (current.length && (current.length >= state.config.maxBatchEvents || bytes + size > maxBytes)) {
        result.push(current);
        current = [];
        bytes = 64;
      }
      current.push(event);
      bytes += size;
    });
    if (current.length) result.push(current);
    return result;
  }

  function body(events) {
    return JSON.stringify({ sent_at: new Date().toISOString(), events: events });
  }

  function beaconUrl() {
    const endpoint = state.config.endpoint;
    const separator = endpoint.indexOf("?") >= 0 ? "&" : "?";
    return endpoint + separator + "key=" + encodeURIComponent(state.config.key);
  }

  /** Hand everything waiting to sendBeacon (the page may be going away). */
  function flushByBeacon() {
    if (!allowed() || !global.navigator || !global.navigator.sendBeacon) return flush();
    // A beacon "accepted" while offline is lost; keep the events for the next page instead.
    if (global.navigator.onLine === false) return undefined;
    const waiting = sendable().filter((event) => !state.inFlight.has(event.event_id));
    batches(waiting, BEACON_MAX_BYTES).forEach((batch) => {
      // A string body goes as text/plain: no CORS preflight, which a leaving page cannot wait for.
      if (global.navigator.sendBeacon(beaconUrl(), body(batch))) {
        removeFromQueue(batch.map((event) => event.event_id));
      }
    });
  }

  function scheduleRetry() {
    const config = state.config;
    const doubled = state.retryDelayMs ? state.retryDelayMs * 2 : config.retryBaseMs;
    state.retryDelayMs = Math.min(config.retryMaxMs, doubled);
    const delay = state.retryDelayMs * (0.5 + Math.random() / 2); // jitter spreads a fleet of retries
    state.retryTimer = global.setTimeout(() => {
      state.retryTimer = null;
      flush();
    }, delay);
  }

  /** Send the oldest waiting batch by fetch; on success go on with the next one. */
  async function flush() {
    if (!allowed()) {
      if (read("choice")) await sendChoice(); // an opt-out still on its way goes out anyway
      return;
    }
    if (state.sending || state.retryTimer) return;
    if (read("choice")) {
      await sendChoice(); // an opt-in first: events sent before it would be dropped
      if (read("choice")) return;
    }
    const batch = batches(sendable(), Infinity)[0];
    if (!batch) return;
    state.sending = true;
    state.inFlight = new Set(batch.map((event) => event.event_id));
    const payload = body(batch);
    let status = 0;
    try {
      const response = await global.fetch(state.config.endpoint, {
        method: "POST",
        keepalive: byteLength(payload) < BEACON_MAX_BYTES, // browsers refuse bigger keepalives
        headers: { "Content-Type": "application/json", "X-Tailor-Key": state.config.key },
        body: payload,
      });
      status = response.status;
      if (status === 200) {
        const answer = await response.json();
        if (answer.rejected && answer.rejected.length && global.console) {
          global.console.warn("tailor: events rejected by the collector", answer.rejected);
        }
      }
    } catch (error) {
      status = 0; // offline or the collector is down: keep the events and retry
    } finally {
      state.sending = false;
      state.inFlight = new Set();
    }
    if (status === 200 || RETRYABLE.indexOf(status) < 0) {
      if (status !== 200 && global.console) global.console.warn("tailor: batch refused, HTTP " + status);
      removeFromQueue(batch.map((event) => event.event_id));
      state.retryDelayMs = 0;
      if (sendable().length) flush();
    } else {
      scheduleRetry();
    }
  }

  // -- page lifecycle ------------------------------------------------------------------------------

  function isVisible() {
    return !global.document || global.document.visibilityState !== "hidden";
  }

  function onHidden() {
    releasePageView();
    flushByBeacon();
  }

  function listen() {
    global.document.addEventListener("visibilitychange", () => {
      if (global.document.visibilityState === "hidden") {
        onHidden();
      } else if (state.pageViewId && state.visibleSince === null) {
        state.visibleSince = Date.now();
      }
    });
    global.addEventListener("pagehide", onHidden);
    global.addEventListener("pageshow", (event) => {
      if (event.persisted && state.config.autoPageView) pageView(); // back from the bfcache
    });
    global.addEventListener("online", () => flush());
    global.setInterval(() => {
      tendHeldPageViews();
      if (allowed()) flush();
      else sendChoice();
    }, state.config.flushIntervalMs);
  }

  /** A copy of `props` with `fields` set (the caller's object is left alone). */
  function withFields(props, fields) {
    return Object.assign({}, props || {}, fields);
  }

  // -- public API ------------------------------------------------------------------------------------

  const tailor = {
    /** Configure and start: {endpoint, key, consentRequired, batchSize, flushIntervalMs, ...}. */
    init(options) {
      Object.assign(state.config, options || {});
      if (state.started) return;
      state.started = true;
      tendHeldPageViews();
      listen();
      if (state.config.autoPageView) pageView();
      if (allowed()) flush();
      else sendChoice();
    },
    track: track,
    pageView: pageView,
    productView: (productId, props) => track("product_view", withFields(props, { product_id: productId })),
    search: (query, props) => track("search", withFields(props, { query: query })),
    addToCart: (productId, props) =>
      track("add_to_cart", withFields(Object.assign({ quantity: 1 }, props), { product_id: productId })),
    removeFromCart: (productId, props) =>
      track("remove_from_cart", withFields(Object.assign({ quantity: 1 }, props), { product_id: productId })),
    checkoutStart: (props) => track("checkout_start", props),
    /** One purchase event per item [{product_id, price, quantity}], all with the order id. */
    purchase(orderId, items, props) {
      return (items || []).map((item) =>
        track("purchase", withFields(withFields(props, item), { order_id: orderId })));
    },
    click: (target, props) => track("click", withFields(props, { target: target })),
    /**
     * Join this browser's anonymous history to a known customer (call at login). Where the
     * collector requires signed identities, pass {signature}: the hex HMAC-SHA256 of the
     * customer id with the shop's identity secret, computed on the shop's server; it goes
     * with every event of this customer. In a browser that opted out nothing is sent but
     * the opt-out, now for this customer too.
     */
    identify(knownCustomerId, options) {
      const id = String(knownCustomerId || "").trim();
      const signature = options && options.signature ? String(options.signature) : null;
      if (id && optedOut()) {
        // The shopper opted out in this browser: their account is opted out too (nothing
        // is tracked; the id is kept here only to tell the collector).
        if (id !== read("customer_id") || signature !== read("identity_signature")) {
          write("customer_id", id);
          write("identity_signature", signature);
          write("choice", "opt-out");
          sendChoice();
        }
        return null;
      }
      if (!allowed() || !id) return null;
      if (id === read("customer_id") && signature === read("identity_signature")) return null;
      const known = id === read("customer_id");
      write("customer_id", id);
      write("identity_signature", signature);
      return known ? null : track("click", { action: "identify" });
    },
    /** Forget the customer (at logout): a new anonymous id and session from here on. */
    reset() {
      write("customer_id", null);
      write("identity_signature", null);
      write("anonymous_id", null);
      write("session", null);
    },
    /**
     * Stop tracking in this browser, persistently; drops everything not yet sent, and tells
     * the collector, which stops personalising, tracking and mailing this shopper.
     */
    optOut() {
      write("opt_out", "1");
      write("choice", "opt-out");
      saveQueue([]);
      state.pageViewId = null;
      sendChoice();
    },
    /** Undo optOut(), here and at the collector (a known customer needs identify's signature). */
    optIn() {
      write("opt_out", null);
      write("choice", "opt-in");
      sendChoice();
    },
    /** Record the shopper's consent choice (needed first when consentRequired is set). */
    consent(granted) {
      write("consent", granted ? "granted" : "denied");
      if (!granted) saveQueue([]);
    },
    flush: flush,
    isTracking: allowed,
    anonymousId: () => read("anonymous_id"),
    customerId: () => read("customer_id") || read("anonymous_id"),
    droppedEvents: () => state.dropped,
  };

  global.tailor = tailor;
})(typeof window !== "undefined" ? window : globalThis);
