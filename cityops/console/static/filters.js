// The shared filter form (console, workstation, case list): options from /api/v1/console/meta,
// state kept in the page URL so that a filtered view can be bookmarked or shared.
import { api, el, t, LANG } from "./common.js";

export const FILTER_KEYS = ["period", "street", "community", "category", "state", "sla", "source", "department", "q"];

let metaPromise = null;
export function loadMeta() {
  if (!metaPromise) metaPromise = api("/api/v1/console/meta");
  return metaPromise;
}

function label(o) {
  return (LANG === "en" && o.name_en) ? o.name_en : o.name;
}

function fill(select, items, keep) {
  const first = select.querySelector("option[value='']");
  select.replaceChildren(first || el("option", { value: "" }, t("common.all")));
  let group = null;
  let groupName = null;
  for (const o of items) {
    const g = o.group ? ((LANG === "en" && o.group_en) ? o.group_en : o.group) : null;
    if (g !== groupName) {
      groupName = g;
      group = g ? el("optgroup", { label: g }) : null;
      if (group) select.append(group);
    }
    (group || select).append(el("option", { value: o.code }, label(o)));
  }
  if (keep) select.value = keep;
}

export function currentFilters(form) {
  const out = {};
  for (const k of FILTER_KEYS) {
    const f = form.elements[k];
    if (f && f.value) out[k] = f.value;
  }
  return out;
}

/** Wire the filter form: fill options, restore from URL, call onChange(filters) on apply/reset. */
export async function initFilters(form, onChange, defaults = {}) {
  const meta = await loadMeta();
  const params = new URLSearchParams(location.search);
  const get = (k) => params.get(k) || defaults[k] || "";
  const scope = meta.scope || {};
  const streets = meta.streets || [];
  fill(form.elements.street, streets, get("street"));
  const fillCommunities = () => {
    const s = form.elements.street.value;
    const list = (meta.communities || []).filter((c) => !s || c.code.startsWith(s));
    fill(form.elements.community, list, get("community"));
  };
  fillCommunities();
  fill(form.elements.category, meta.categories || [], get("category"));
  fill(form.elements.state, meta.states || [], get("state"));
  fill(form.elements.source, meta.sources || [], get("source"));
  fill(form.elements.department, meta.departments || [], get("department"));
  if (form.elements.period) form.elements.period.value = get("period") || form.elements.period.value;
  if (form.elements.sla) form.elements.sla.value = get("sla");
  if (form.elements.q) form.elements.q.value = get("q");
  // a street or community account cannot widen its scope: lock what is fixed
  if (scope.street) { form.elements.street.value = scope.street; form.elements.street.disabled = true; fillCommunities(); }
  if (scope.community) { form.elements.community.value = scope.community; form.elements.community.disabled = true; }

  form.elements.street.addEventListener("change", () => { params.delete("community"); fillCommunities(); });
  const emit = () => {
    const f = currentFilters(form);
    const u = new URLSearchParams(location.search);
    for (const k of FILTER_KEYS) { if (f[k]) u.set(k, f[k]); else u.delete(k); }
    u.delete("page");
    history.replaceState(null, "", location.pathname + (u.toString() ? "?" + u : ""));
    onChange(f);
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); emit(); });
  form.addEventListener("reset", () => {
    setTimeout(() => {
      for (const k of FILTER_KEYS) params.delete(k);
      fillCommunities();
      if (scope.street) form.elements.street.value = scope.street;
      if (scope.community) form.elements.community.value = scope.community;
      emit();
    }, 0);
  });
  // selects apply at once (keyboard users can still tab through without triggering: change fires on commit)
  for (const k of ["period", "street", "community", "category", "state", "sla", "source", "department"]) {
    const f = form.elements[k];
    if (f) f.addEventListener("change", emit);
  }
  return { meta, filters: currentFilters(form) };
}
