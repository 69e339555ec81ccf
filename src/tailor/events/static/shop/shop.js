/*
 * The demo shop's page logic: a five-product catalogue, a cart in localStorage
 * ("shop:cart"), and the tailor.js calls a real shop would make. Reads config.js
 * (the collector's endpoint and the demo's public key), served by `tailor collect --demo-shop`.
 * The browser tests of tailor.js drive it; the showcase shop on a trained home's own catalogue
 * is `tailor/shop/` (`tailor serve --demo-shop`).
 */
(function () {
  "use strict";

  const CATALOGUE = [
    { product_id: "p-100", name: "Linen shirt", category: "clothing", price: 39.9 },
    { product_id: "p-101", name: "Wool scarf", category: "accessories", price: 24.5 },
    { product_id: "p-102", name: "Canvas sneakers", category: "shoes", price: 59.0 },
    { product_id: "p-103", name: "Denim jacket", category: "clothing", price: 89.0 },
    { product_id: "p-104", name: "Leather belt", category: "accessories", price: 19.9 },
  ];

  const byId = (id) => CATALOGUE.find((product) => product.product_id === id);
  const query = (name) => new URLSearchParams(window.location.search).get(name);
  const element = (id) => document.getElementById(id);

  function loadCart() {
    try {
      return JSON.parse(localStorage.getItem("shop:cart")) || [];
    } catch (error) {
      return [];
    }
  }

  function saveCart(items) {
    localStorage.setItem("shop:cart", JSON.stringify(items));
  }

  function productLink(product) {
    return '<li><a class="product" id="product-' + product.product_id + '" href="product.html?id='
      + product.product_id + '">' + product.name + "</a> " + product.price.toFixed(2) + " EUR</li>";
  }

  function homePage() {
    const term = (query("q") || "").trim();
    let shown = CATALOGUE;
    if (term) {
      shown = CATALOGUE.filter((product) => (product.name + " " + product.category).toLowerCase()
        .includes(term.toLowerCase()));
      tailor.search(term, { results: shown.length });
      element("heading").textContent = 'Results for "' + term + '"';
    }
    element("products").innerHTML = shown.map(productLink).join("");
  }

  function productPage() {
    const product = byId(query("id")) || CATALOGUE[0];
    element("name").textContent = product.name;
    element("price").textContent = product.price.toFixed(2) + " EUR";
    tailor.productView(product.product_id, { price: product.price, category: product.category });
    element("add-to-cart").addEventListener("click", () => {
      const cart = loadCart();
      cart.push({ product_id: product.product_id, price: product.price, quantity: 1 });
      saveCart(cart);
      tailor.addToCart(product.product_id, { price: product.price, quantity: 1 });
      element("added").textContent = "Added to your cart.";
    });
  }

  function cartPage() {
    const cart = loadCart();
    element("items").innerHTML = cart.map((item, index) => "<li>" + byId(item.product_id).name
      + ' <button class="remove" data-index="' + index + '">remove</button></li>').join("");
    document.querySelectorAll("button.remove").forEach((button) => {
      button.addEventListener("click", () => {
        const items = loadCart();
        const [removed] = items.splice(Number(button.dataset.index), 1);
        saveCart(items);
        tailor.removeFromCart(removed.product_id, { price: removed.price, quantity: removed.quantity });
        window.location.reload();
      });
    });
    element("checkout").addEventListener("click", () => {
      const value = cart.reduce((sum, item) => sum + item.price * item.quantity, 0);
      tailor.checkoutStart({ items: cart.length, value: Math.round(value * 100) / 100 });
      window.location.href = "checkout.html";
    });
  }

  function checkoutPage() {
    element("sign-in").addEventListener("click", () => {
      tailor.identify(element("customer-id").value);
      element("signed-in").textContent = "Signed in as " + element("customer-id").value;
    });
    element("place-order").addEventListener("click", () => {
      const cart = loadCart();
      const orderId = "o-" + Date.now().toString(36);
      tailor.purchase(orderId, cart);
      saveCart([]);
      element("confirmation").textContent = "Thank you! Order " + orderId + " is placed.";
    });
  }

  function commonParts() {
    element("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      window.location.href = "index.html?q=" + encodeURIComponent(element("search-query").value);
    });
    element("opt-out").addEventListener("click", (event) => {
      event.preventDefault();
      tailor.optOut();
      element("opt-out").textContent = "You are opted out of tracking.";
    });
    element("consent").addEventListener("click", (event) => {
      event.preventDefault();
      tailor.consent(true);
      element("consent").textContent = "Thank you.";
    });
  }

  // index.html?consent=required makes the shop ask for consent first (remembered in this browser).
  if (query("consent") === "required") localStorage.setItem("shop:consent_required", "1");
  tailor.init({ endpoint: window.TAILOR_SHOP.endpoint, key: window.TAILOR_SHOP.key,
                flushIntervalMs: 1000,
                consentRequired: localStorage.getItem("shop:consent_required") === "1" });
  commonParts();
  const pages = { home: homePage, product: productPage, cart: cartPage, checkout: checkoutPage };
  pages[document.body.dataset.page]();
})();
