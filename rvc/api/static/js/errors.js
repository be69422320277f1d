// API errors shown next to the control they concern: the envelope's `field` picks the `.field` block whose
// data-field lists that name; an error without a known field goes under the Generate button.

const GENERAL = "err-general";

function blockFor(field) {
  if (!field) return null;
  const name = String(field).split(".")[0];
  return document.querySelector(`[data-field~="${CSS.escape(name)}"]`);
}

function controlsOf(block) {
  return [...block.querySelectorAll("input, select, textarea")].filter((el) => el.type !== "radio");
}

export function clearErrors() {
  for (const element of document.querySelectorAll(".error")) {
    element.textContent = "";
    element.hidden = true;
  }
  for (const control of document.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
}

// Returns the element that shows the message.
export function showError(error, { focus = true } = {}) {
  let block = error.unauthorized ? document.querySelector('[data-field~="api_key"]') : blockFor(error.field);
  if (block && (block.hidden || block.closest("[hidden]"))) block = null; // a field this mode does not show
  if (block && error.unauthorized) document.getElementById("access").open = true;
  const target = block ? block.querySelector(".error") : document.getElementById(GENERAL);
  let message = error.message || String(error);
  if (!block && error.field && !message.startsWith(error.field)) message = `${error.field}: ${message}`;
  if (error.requestId && (error.status || 0) >= 500) message += ` (request ${error.requestId})`;
  target.textContent = message;
  target.hidden = false;
  if (block) {
    const controls = controlsOf(block);
    for (const control of controls) control.setAttribute("aria-invalid", "true");
    const labelled = block.querySelector("label")?.control; // the field's own box, not its slider
    const first = labelled || controls[0];
    if (focus && first && !first.disabled) first.focus();
  }
  return target;
}
