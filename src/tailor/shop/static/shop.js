/*
 * The demo shop's pages: the home's catalogue with Tailor's live answers and their reasons.
 *
 * Reads config.js (the collector's endpoint and the demo shop's public key), the shop's
 * same-origin routes (api/catalogue, api/identity, api/homepage, api/also_bought,
 * api/checkout_offer: the serving API's answers, computed on the server) and localStorage:
 * "shop:cart" (the cart) and "shop:who" (the customer picked in "Who am I"). Every page is
 * tracked by tailor.js, so the events reach the store and the session features the next
 * answer reads. The last answer of each kind, with the request that asked for it, is kept
 * in window.shopAnswers (what the browser tests compare with the API).
 */
(function () {
  "use strict";

  const SVG = "http://www.w3.org/2000/svg";
  const HOME_K = 12;
  const ALSO_K = 4;
  const BROWSING = "because you are browsing ";
  const OFFERS = {
    "10_off": "10% off this order",
    free_shipping: "Free shipping on this order",
    none: "No offer on this cart",
  };
  const shop = { products: new Map(), customers: [], categories: [] };
  window.shopAnswers = {};

  const element = (id) => document.getElementById(id);
  const query = (name) => new URLSearchParams(window.location.search).get(name);
  const money = (value) => (value == null ? "" : Number(value).toFixed(2) + " EUR");

  function make(tag, props, children) {
    const node = document.createElement(tag);
    Object.entries(props || {}).forEach(([name, value]) => {
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else if (name.startsWith("data-") || name.startsWith("aria-")) node.setAttribute(name, value);
      else node[name] = value;
    });
    (children || []).forEach((child) => child && node.appendChild(child));
    return node;
  }

  // -- the server -----------------------------------------------------------------------------

  async function api(path, body) {
    const response = await fetch("api/" + path, body === undefined ? {} : {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || "HTTP " + response.status);
    return answer;
  }

  /** Ask the shop's route `name` and keep the request and answer for the tests. */
  async function ask(name, request) {
    const answer = await api(name, request);
    window.shopAnswers[name] = { request: request, answer: answer };
    return answer;
  }

  // -- who is shopping ------------------------------------------------------------------------

  function visitorId() {
    let id = tailor.customerId();
    if (!id) {
      id = localStorage.getItem("shop:visitor");
      if (!id) {
        id = "visitor-" + Math.random().toString(36).slice(2, 12);
        localStorage.setItem("shop:visitor", id);
      }
    }
    return id;
  }

  function sessionId() {
    try {
      const session = JSON.parse(localStorage.getItem("tailor:session"));
      if (session && session.id) return session.id;
    } catch (error) { /* no session yet */ }
    return "shop-" + visitorId();
  }

  function context(extra) {
    const result = Object.assign({ session_id: sessionId() }, extra || {});
    const anonymous = tailor.anonymousId();
    if (anonymous) result.anonymous_id = anonymous;
    return result;
  }

  const who = () => localStorage.getItem("shop:who") || "";
  const personalizationOn = () => tailor.isTracking();

  async function switchTo(customerId) {
    tailor.reset(); // a new anonymous id and session: another shopper from here on
    saveCart([]);
    localStorage.setItem("shop:who", customerId);
    if (customerId) {
      const identity = await api("identity?customer_id=" + encodeURIComponent(customerId));
      tailor.identify(customerId, identity.signature ? { signature: identity.signature } : {});
      await tailor.flush();
    }
    window.location.href = "index.html"; // what this shopper is shown
  }

  /** Wait (at most 5 s) until the collector has taken the opt-out or opt-in, then reload. */
  async function setPersonalization(on) {
    if (on) tailor.optIn();
    else tailor.optOut();
    const deadline = Date.now() + 5000;
    while (localStorage.getItem("tailor:choice") && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    window.location.reload();
  }

  function header() {
    const select = element("who");
    shop.customers.forEach((customer) => {
      select.appendChild(make("option", {
        value: customer.customer_id,
        text: "Customer " + customer.customer_id + " (" + customer.orders + " orders)",
      }));
    });
    if (who() && !shop.customers.some((customer) => customer.customer_id === who())) {
      select.appendChild(make("option", { value: who(), text: "Customer " + who() }));
    }
    select.value = who();
    select.addEventListener("change", () => switchTo(select.value));
    element("who-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const id = element("who-id").value.trim();
      if (id) switchTo(id);
    });
    const toggle = element("personalization");
    const on = personalizationOn();
    toggle.setAttribute("aria-pressed", String(on));
    toggle.textContent = "Personalization: " + (on ? "on" : "off");
    toggle.addEventListener("click", () => setPersonalization(!on));
    if (!on) {
      element("notice").textContent = "Personalization is off: this browser is opted out, "
        + "nothing is tracked and every list is the one everybody gets.";
    }
    element("cart-count").textContent = String(loadCart().reduce((n, line) => n + line.quantity, 0));
  }

  // -- products -------------------------------------------------------------------------------

  function hash(text) {
    let value = 7;
    for (let i = 0; i < text.length; i += 1) value = (value * 31 + text.charCodeAt(i)) >>> 0;
    return value;
  }

  /** A generated picture: the category's colour, shaded per product, with its initials
   *  (decorative: the product's name is always beside it). */
  function tile(product, large) {
    const index = shop.categories.indexOf(product.category);
    const hue = index < 0 ? 30 : Math.round((index * 360) / Math.max(shop.categories.length, 1) + 200) % 360;
    const shade = 38 + (hash(product.product_id) % 22);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 160 120");
    svg.setAttribute("focusable", "false");
    const background = document.createElementNS(SVG, "rect");
    background.setAttribute("width", "160");
    background.setAttribute("height", "120");
    background.setAttribute("fill", "hsl(" + hue + ", 55%, " + shade + "%)");
    const circle = document.createElementNS(SVG, "circle");
    circle.setAttribute("cx", "128");
    circle.setAttribute("cy", "24");
    circle.setAttribute("r", String(10 + (hash(product.name) % 14)));
    circle.setAttribute("fill", "hsla(" + ((hue + 40) % 360) + ", 70%, 85%, 0.55)");
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("x", "16");
    label.setAttribute("y", "96");
    label.setAttribute("fill", "#fff");
    label.setAttribute("font-size", "34");
    label.setAttribute("font-family", "system-ui, sans-serif");
    label.setAttribute("font-weight", "700");
    label.textContent = product.name.split(/\s+/).filter((word) => /^[A-Za-z0-9]/.test(word))
      .slice(0, 2).map((word) => word[0]).join("").toUpperCase();
    svg.append(background, circle, label);
    return make("span", { className: "tile" + (large ? " large" : ""), "aria-hidden": "true" }, [svg]);
  }

  function productOf(productId) {
    return shop.products.get(productId)
      || { product_id: productId, name: productId, category: "", price: null };
  }

  /** One product card; `item` is an answer's item (reason, score, confidence, lift). */
  function card(productId, item) {
    const product = productOf(productId);
    const parts = [
      tile(product),
      make("p", { className: "category", text: product.category }),
      make("a", { className: "name", href: "product.html?id=" + encodeURIComponent(productId),
                  text: product.name }),
      make("p", { className: "price", text: money(product.price) }),
    ];
    if (item) {
      const browsing = item.reason.startsWith(BROWSING);
      parts.push(make("p", { className: "reason" + (browsing ? " browsing" : ""), text: item.reason }));
      const numbers = item.confidence != null
        ? "confidence " + item.confidence.toFixed(2) + " · lift " + item.lift.toFixed(2)
        : "score " + item.score.toFixed(4);
      parts.push(make("p", { className: "numbers", text: numbers }));
    }
    const promoted = item && item.reason.startsWith(BROWSING);
    return make("li", { className: "card" + (promoted ? " promoted" : ""), "data-product-id": productId,
                        "data-score": item ? String(item.score) : "" }, parts);
  }

  function facts(answer, rows) {
    const list = element("answer-facts");
    list.replaceChildren();
    const shown = [
      ["model version", answer.model_version || "none (fallback)"],
      ["variant", answer.variant],
      ...rows,
      ["experiment", answer.experiment ? answer.experiment + " / " + answer.experiment_variant : "none"],
      ["fallback", answer.fallback ? "yes: " + answer.fallback_reason : "no"],
      ["request id", answer.request_id],
    ];
    shown.forEach(([name, value]) => {
      list.append(make("dt", { text: name }), make("dd", { text: String(value) }));
    });
  }

  // -- the pages ------------------------------------------------------------------------------

  function explainHomepage(answer) {
    const browsed = [...new Set(answer.items.filter((item) => item.reason.startsWith(BROWSING))
      .map((item) => item.reason.slice(BROWSING.length)))];
    if (answer.fallback) return "Tailor answered with its popularity fallback: " + answer.fallback_reason + ".";
    if (!personalizationOn()) {
      return "Not personalised: you turned personalization off, so you see what everybody sees "
        + "(popular and trending products).";
    }
    if (!answer.personalised) return "Not personalised: the list everybody gets (popular and trending products).";
    const parts = [];
    if (browsed.length) {
      parts.push("You are browsing " + browsed.join(" and ") + " in this visit, so more of it "
        + "moves up (the outlined products).");
    }
    if (who()) parts.push("Picked for customer " + who() + " from their purchases and views.");
    else if (browsed.length) parts.push("The rest: popular and trending products.");
    else {
      parts.push("You are new here: popular and trending products to start with. View a few "
        + "products of one category and this list follows you.");
    }
    return parts.join(" ");
  }

  async function homePage() {
    const request = { customer_id: visitorId(), k: HOME_K, context: context() };
    const answer = await ask("homepage", request);
    const list = element("recommendations");
    list.className = "products layout-" + (answer.layout || "grid");
    list.replaceChildren(...answer.items.map((item) => card(item.product_id, item)));
    element("why-text").textContent = explainHomepage(answer) + (answer.layout
      ? " Shown as " + answer.layout.replace("_", " + ") + ": your variant of the "
        + answer.experiment + " experiment."
      : "");
    facts(answer, [["personalised", answer.personalised ? "yes" : "no"],
                   ["layout", answer.layout || "grid (the shop's own)"]]);
    const chips = element("categories");
    shop.categories.forEach((category) => {
      const button = make("button", { type: "button", text: category });
      button.addEventListener("click", () => showCategory(category));
      chips.appendChild(make("li", {}, [button]));
    });
  }

  function showCategory(category) {
    const section = element("category-section");
    section.hidden = false;
    element("category-heading").textContent = "All in " + category;
    const products = [...shop.products.values()].filter((product) => product.category === category);
    element("category-products").replaceChildren(
      ...products.slice(0, 24).map((product) => card(product.product_id, null)));
    tailor.click("category:" + category);
    section.scrollIntoView();
  }

  async function productPage() {
    const productId = query("id") || "";
    const product = shop.products.get(productId);
    if (!product) {
      element("name").textContent = "No such product";
      return;
    }
    document.title = product.name + " · Tailor demo shop";
    element("tile").replaceWith(tile(product, true));
    element("category").textContent = product.category;
    element("name").textContent = product.name;
    element("price").textContent = money(product.price);
    tailor.productView(productId, { price: product.price, category: product.category });
    element("add-to-cart").addEventListener("click", () => {
      addToCart(product);
      element("added").textContent = product.name + " is in your cart.";
    });
    const cart = loadCart().map((line) => line.product_id);
    const request = { product_id: productId, customer_id: visitorId(), k: ALSO_K,
                      context: context(cart.length ? { cart: cart } : {}) };
    delete request.context.session_id; // also_bought reads no session
    const answer = await ask("also_bought", request);
    element("also-bought").replaceChildren(...answer.items.map((item) => card(item.product_id, item)));
    element("also-text").textContent = answer.items.length
      ? "Each with how often it is bought together with " + product.name
        + " (confidence) and how much more than by chance (lift)."
      : "Nothing is bought with " + product.name + " often enough yet.";
    facts(answer, []);
  }

  function loadCart() {
    try {
      return JSON.parse(localStorage.getItem("shop:cart")) || [];
    } catch (error) {
      return [];
    }
  }

  function saveCart(lines) {
    localStorage.setItem("shop:cart", JSON.stringify(lines));
    const count = element("cart-count");
    if (count) count.textContent = String(lines.reduce((n, line) => n + line.quantity, 0));
  }

  function addToCart(product) {
    const lines = loadCart();
    const line = lines.find((item) => item.product_id === product.product_id);
    if (line) line.quantity += 1;
    else lines.push({ product_id: product.product_id, quantity: 1, price: product.price });
    saveCart(lines);
    tailor.addToCart(product.product_id, { price: product.price, quantity: 1 });
  }

  const cartTotal = (lines) => lines.reduce((sum, line) => sum + (line.price || 0) * line.quantity, 0);

  /** Ask for the checkout offer of the cart and show it (cart and checkout pages). */
  async function showOffer(lines) {
    const box = element("offer");
    if (!lines.length) {
      element("offer-text").textContent = "Add a product to see your offer.";
      return null;
    }
    const request = {
      customer_id: visitorId(), session_id: sessionId(),
      cart: lines.map((line) => ({ product_id: line.product_id, quantity: line.quantity,
                                   price: line.price })),
      context: context(),
    };
    delete request.context.session_id;
    const answer = await ask("checkout_offer", request);
    box.classList.toggle("has-offer", answer.offer !== "none");
    element("offer-text").textContent = OFFERS[answer.offer] + ". " + answer.reason;
    box.dataset.offer = answer.offer;
    facts(answer, [["offer", answer.offer],
                   ["P(abandon)", answer.p_abandon == null ? "unknown" : answer.p_abandon.toFixed(4)]]);
    return answer;
  }

  async function cartPage() {
    const lines = loadCart();
    element("empty").hidden = lines.length > 0;
    element("cart-table").hidden = lines.length === 0;
    element("checkout").hidden = lines.length === 0;
    element("cart-lines").replaceChildren(...lines.map((line, index) => {
      const product = productOf(line.product_id);
      const remove = make("button", { type: "button", className: "remove", text: "Remove",
                                      "aria-label": "Remove " + product.name });
      remove.addEventListener("click", () => {
        const kept = loadCart();
        const [removed] = kept.splice(index, 1);
        saveCart(kept);
        tailor.removeFromCart(removed.product_id, { price: removed.price, quantity: removed.quantity });
        window.location.reload();
      });
      return make("tr", { "data-product-id": line.product_id }, [
        make("td", {}, [make("a", { href: "product.html?id=" + encodeURIComponent(line.product_id),
                                    text: product.name })]),
        make("td", { text: String(line.quantity) }),
        make("td", { text: money((line.price || 0) * line.quantity) }),
        make("td", {}, [remove]),
      ]);
    }));
    element("cart-total").textContent = money(cartTotal(lines));
    element("checkout").addEventListener("click", () => {
      tailor.checkoutStart({ items: lines.length, value: Math.round(cartTotal(lines) * 100) / 100 });
    });
    await showOffer(lines);
  }

  async function checkoutPage() {
    const lines = loadCart();
    element("summary").replaceChildren(...lines.map((line) => make("li", {
      text: line.quantity + " × " + productOf(line.product_id).name + ": " + money((line.price || 0) * line.quantity),
    })));
    element("order-total").textContent = money(cartTotal(lines));
    element("place-order").disabled = lines.length === 0;
    element("place-order").addEventListener("click", async () => {
      const orderId = "o-" + Date.now().toString(36);
      tailor.purchase(orderId, loadCart());
      saveCart([]);
      element("place-order").disabled = true;
      element("confirmation").textContent = "Thank you! Order " + orderId + " is placed.";
      await tailor.flush();
    });
    await showOffer(lines);
  }

  async function start() {
    tailor.init({ endpoint: window.TAILOR_SHOP.endpoint, key: window.TAILOR_SHOP.key,
                  flushIntervalMs: 1000 });
    const catalogue = await api("catalogue");
    catalogue.products.forEach((product) => shop.products.set(product.product_id, product));
    shop.customers = catalogue.customers;
    shop.categories = catalogue.categories;
    if (catalogue.error) element("notice").textContent = "The shop has no catalogue yet: " + catalogue.error;
    header();
    // The reload after the personalization switch can come before the collector took the
    // choice (it waits at most 5 s): the choice goes first, then the page asks for its lists.
    if (localStorage.getItem("tailor:choice")) await tailor.flush();
    const pages = { home: homePage, product: productPage, cart: cartPage, checkout: checkoutPage };
    await pages[document.body.dataset.page]();
    document.body.dataset.ready = "true";
  }

  start().catch((error) => {
    element("notice").textContent = "Something went wrong: " + error.message;
    document.body.dataset.ready = "error";
  });
})();
