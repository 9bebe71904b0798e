/** Small DOM helpers shared by the views. No innerHTML with data: text always goes in as text. */

export const $ = (selector, root = document) => root.querySelector(selector);

/** h("li", {class: "x", dataset: {id: 1}}, "text", child) -> an element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  el.append(...children.filter((child) => child !== null && child !== undefined));
  return el;
}

const VIEWS = ["view-auth", "view-home", "view-meeting"];

export function showView(id) {
  for (const view of VIEWS) document.getElementById(view).hidden = view !== id;
}

/** A short message at the bottom of the page; kind "error" stays longer. */
export function toast(message, kind = "info") {
  if (kind === "error") console.error(message);
  const el = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  $("#toasts").append(el);
  setTimeout(() => el.remove(), kind === "error" ? 8000 : 4000);
}

/** The text to show for an API or relay error. */
export function describe(error) {
  return error?.message || String(error);
}

/** Disable a form's submit button while `action` runs; errors become toasts. */
export async function busy(form, action) {
  const button = form.querySelector("[type=submit]");
  if (button) button.disabled = true;
  try {
    return await action();
  } catch (error) {
    toast(describe(error), "error");
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

export function initials(name) {
  return (
    String(name)
      .split(/\s+/)
      .filter(Boolean)
      .slice(0, 2)
      .map((word) => word[0].toUpperCase())
      .join("") || "?"
  );
}
