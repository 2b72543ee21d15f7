// Small helpers to build accessible DOM without a framework.

let nextId = 0;
/** A document-unique id with a readable prefix. */
export function uid(prefix = "id") {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

/**
 * h("button", {class: "primary", onclick: fn, "aria-label": "…"}, "Text", child…)
 * Attributes: `class`, `text`, `html` is never offered (no innerHTML from data);
 * `on…` functions become listeners; booleans set or drop the attribute.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value == null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "text") {
      el.textContent = value;
    } else if (key === "value" && "value" in el) {
      el.value = value;
    } else if (key === "checked" || key === "selected") {
      el[key] = Boolean(value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** Build an SVG icon from a path list (decorative: hidden from assistive tech). */
export function icon(paths, cls = "icon") {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", cls);
  for (const d of paths) {
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

/**
 * A labelled form field with a hint and an error slot beside it.
 * Returns {el, input, setError(msg|null)}; the error is tied to the control with
 * aria-describedby and aria-invalid, so it is read out with it.
 */
export function field({
  name,
  label,
  type = "text",
  value = "",
  hint = "",
  control = null,
  attrs = {},
}) {
  const id = uid(`f-${name}`);
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const input =
    control ??
    (type === "textarea"
      ? h("textarea", { id, name, ...attrs })
      : h("input", { id, name, type, ...attrs }));
  if (!control) input.value = value ?? "";
  input.id = id;
  input.name = name;
  const describedBy = [hint ? hintId : null, errorId].filter(Boolean).join(" ");
  input.setAttribute("aria-describedby", describedBy);
  const error = h("p", { class: "field-error", id: errorId, hidden: true });
  const el = h(
    "div",
    { class: "field", "data-field": name },
    h("label", { for: id }, label),
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
    input,
    error,
  );
  const clearOnEdit = () => {
    if (el.classList.contains("has-error")) api.setError(null);
  };
  input.addEventListener("input", clearOnEdit);
  input.addEventListener("change", clearOnEdit);
  const api = {
    el,
    input,
    setError(message) {
      if (message) {
        error.replaceChildren(h("span", { class: "visually-hidden" }, "Error: "), message);
        error.hidden = false;
        input.setAttribute("aria-invalid", "true");
        el.classList.add("has-error");
      } else {
        error.replaceChildren();
        error.hidden = true;
        input.removeAttribute("aria-invalid");
        el.classList.remove("has-error");
      }
    },
  };
  return api;
}

/** A form-level message (problems not tied to one field); focused so it is read out. */
export function formMessage() {
  const el = h("div", { class: "form-message", role: "alert", tabindex: "-1", hidden: true });
  return {
    el,
    show(title, lines = []) {
      replace(
        el,
        h("p", { class: "form-message-title" }, title),
        lines.length ? h("ul", {}, lines.map((line) => h("li", {}, line))) : null,
      );
      el.hidden = false;
      el.focus();
    },
    clear() {
      el.hidden = true;
      el.replaceChildren();
    },
  };
}

/**
 * A modal dialog. `build(close)` returns the dialog's content; the promise settles
 * with what `close(value)` is given (undefined when dismissed with Escape).
 */
export function openDialog(build, { labelledBy, className = "" } = {}) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: `dialog ${className}`, "aria-labelledby": labelledBy });
    let settled = false;
    const opener = document.activeElement;
    const close = (value) => {
      if (settled) return;
      settled = true;
      dialog.close();
      dialog.remove();
      if (opener && opener.isConnected) opener.focus();
      resolve(value);
    };
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      close(undefined);
    });
    append(dialog, [build(close)]);
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** Ask before doing something that can't be undone; resolves true to go ahead. */
export function confirmDialog({ title, body, confirm, keep = "Go back", danger = false }) {
  const titleId = uid("dlg");
  return openDialog(
    (close) =>
      h(
        "div",
        { class: "dialog-body" },
        h("h2", { id: titleId }, title),
        (Array.isArray(body) ? body : [body]).map((line) => h("p", {}, line)),
        h(
          "div",
          { class: "actions" },
          h(
            "button",
            { type: "button", class: danger ? "danger" : "primary", onclick: () => close(true) },
            confirm,
          ),
          h("button", { type: "button", class: "secondary", onclick: () => close(false) }, keep),
        ),
      ),
    { labelledBy: titleId },
  ).then(Boolean);
}

let toastTimer = 0;
/** A short message shown above the tab bar and read out politely. */
export function toast(message, kind = "info") {
  const el = document.getElementById("toast");
  if (!el) return;
  el.textContent = message;
  el.dataset.kind = kind;
  el.hidden = false;
  announce(message);
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    el.hidden = true;
  }, 6000);
}

/** Say something to screen reader users without showing it. */
export function announce(message) {
  const el = document.getElementById("announcer");
  if (!el) return;
  el.textContent = "";
  // A fresh text node after a tick, so the same words are read again.
  setTimeout(() => {
    el.textContent = message;
  }, 50);
}
