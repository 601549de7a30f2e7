// The notebook widget's page side: controls that set the model's traits, and the
// picture Python draws for them. Names are set as text, never as HTML.
function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function fill(select, values, chosen, label = (v) => v) {
  select.replaceChildren(...values.map((v) => {
    const option = el("option", label(v));
    option.value = v;
    return option;
  }));
  select.value = chosen;
}

function render({ model, el: root }) {
  const box = el("div", undefined, "wl-widget");
  const tensor = el("select");
  tensor.title = "tensor";
  const view = el("select");
  view.title = "view";
  const slider = el("input");
  slider.type = "range";
  slider.min = "0";
  const label = el("span");
  const follow = el("input");
  follow.type = "checkbox";
  const followLabel = el("label", " follow");
  followLabel.prepend(follow);
  const live = el("span", "", "wl-live");
  const image = el("img");
  image.alt = "";
  const error = el("p", "", "wl-error");
  const header = el("header");
  header.append(tensor, view, slider, label, followLabel, live);
  box.append(el("div", model.get("title")), header, image, error);
  root.append(box);

  const steps = () => model.get("steps");
  function showSteps() {
    const all = steps();
    slider.max = String(Math.max(0, all.length - 1));
    const index = all.indexOf(model.get("step"));
    slider.value = String(index < 0 ? all.length - 1 : index);
    label.textContent = all.length ? `step ${model.get("step")} (${all.length} recorded)` : "no steps";
  }
  function showAll() {
    fill(tensor, model.get("tensors"), model.get("tensor"));
    fill(view, model.get("views"), model.get("view"));
    showSteps();
    follow.checked = model.get("follow");
    live.textContent = model.get("live") ? "● live" : "";
    const png = model.get("image");
    if (png) image.src = `data:image/png;base64,${png}`;
    error.textContent = model.get("error");
  }
  const set = (name, value) => { model.set(name, value); model.save_changes(); };
  tensor.onchange = () => set("tensor", tensor.value);
  view.onchange = () => set("view", view.value);
  slider.oninput = () => {
    const all = steps();
    set("follow", Number(slider.value) === all.length - 1 && model.get("follow"));
    set("step", all[Number(slider.value)]);
  };
  follow.onchange = () => {
    set("follow", follow.checked);
    if (follow.checked && steps().length) set("step", steps()[steps().length - 1]);
  };
  for (const name of ["tensors", "tensor", "views", "view", "steps", "step", "follow", "live", "image", "error"]) {
    model.on(`change:${name}`, showAll);
  }
  showAll();
}

export default { render };
