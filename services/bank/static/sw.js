// Service worker: the app shell opens offline, and so do the bookings (and the rest of
// what the clinician last saw of their own record). The network always comes first;
// the saved copy is only for when there is none.

const VERSION = "v2"; // v2: bookings show pay state (timesheets)
const SHELL_CACHE = `fs-shell-${VERSION}`;
const API_CACHE = "fs-api"; // the app clears this at sign-in and sign-out
const SHELL = [
  "./",
  "index.html",
  "app.css",
  "manifest.webmanifest",
  "icons/icon.svg",
  "icons/icon-192.png",
  "icons/apple-touch-icon.png",
  "js/app.js",
  "js/api.js",
  "js/dom.js",
  "js/labels.js",
  "js/live.js",
  "js/time.js",
  "js/views/bookings.js",
  "js/views/cancel.js",
  "js/views/offers.js",
  "js/views/profile.js",
  "js/views/signin.js",
  "js/views/week.js",
];
// GET answers saved for offline use. Offers are left out on purpose: an offer seen
// offline may be gone, and it can't be answered without a connection anyway.
const SAVED_API = ["/api/bookings", "/api/me", "/api/availability", "/api/availability/patterns"];
const SHELL_WAIT_MS = 4000;

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(SHELL_CACHE);
      // One by one, so a single missing file doesn't leave the whole shell unsaved.
      await Promise.all(SHELL.map((path) => cache.add(path).catch(() => undefined)));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith("fs-shell-") && name !== SHELL_CACHE) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/api/")) {
    if (SAVED_API.includes(url.pathname)) event.respondWith(apiFirst(request));
    return; // the offer stream and everything else go straight to the network
  }
  const scope = new URL(self.registration.scope).pathname;
  if (url.pathname.startsWith(scope)) event.respondWith(shellFirst(event, request));
});

/** Network first; a good answer is saved (stamped with when); no network: the copy. */
async function apiFirst(request) {
  const cache = await caches.open(API_CACHE);
  let response;
  try {
    response = await fetch(request);
  } catch (error) {
    const saved = await cache.match(request);
    if (!saved) throw error;
    const headers = new Headers(saved.headers);
    headers.set("x-fairshare-offline", "1");
    return new Response(saved.body, { status: saved.status, statusText: saved.statusText, headers });
  }
  if (response.ok) {
    const headers = new Headers(response.headers);
    headers.set("x-fairshare-saved-at", new Date().toISOString());
    const copy = new Response(await response.clone().blob(), {
      status: response.status,
      statusText: response.statusText,
      headers,
    });
    await cache.put(request, copy);
  } else if (response.status === 401) {
    await caches.delete(API_CACHE); // the session ended: keep nothing of it
  }
  return response;
}

/** Network first (so an update shows at once), the saved shell if it is slow or absent. */
async function shellFirst(event, request) {
  const cache = await caches.open(SHELL_CACHE);
  const network = fetch(request).then(async (response) => {
    if (response.ok && response.type === "basic") await cache.put(request, response.clone());
    return response;
  });
  event.waitUntil(network.catch(() => undefined));
  const saved = async () =>
    (await cache.match(request, { ignoreSearch: true })) ??
    (request.mode === "navigate" ? await cache.match("./") : undefined);
  let timer;
  const slow = new Promise((resolve) => {
    timer = setTimeout(resolve, SHELL_WAIT_MS, "slow");
  });
  try {
    const first = await Promise.race([network, slow]);
    if (first !== "slow") return first;
    return (await saved()) ?? (await network);
  } catch (error) {
    const copy = await saved();
    if (copy) return copy;
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
