// crmsync's small script: shows only the chosen transport's settings in the sync form,
// only the chosen table's fields when adding a field to a sync, and makes a record's link
// picker choose what htmx found as the person typed. Pages work without it (a link then
// keeps its value).
document.addEventListener("DOMContentLoaded", () => {
  const transport = document.getElementById("transport");
  if (transport) {
    const show = () => document.querySelectorAll("fieldset[data-transport]").forEach((set) => {
      set.hidden = set.dataset.transport !== transport.value;
    });
    transport.addEventListener("change", show);
    show();
  }
  const table = document.getElementById("field-table");
  const field = document.getElementById("field-no");
  if (table && field) {
    const filter = () => {
      let first = null;
      for (const option of field.options) {
        option.hidden = option.dataset.table !== table.value;
        if (!option.hidden && first === null) first = option;
      }
      if (field.selectedOptions[0]?.hidden && first) first.selected = true;
    };
    table.addEventListener("change", filter);
    filter();
  }
  // Link pickers: the hidden input holds the record's id, the search box its label.
  const choose = (picker, id, label) => {
    const search = picker.querySelector(".picker-search");
    picker.querySelector(".picker-value").value = id;
    search.value = label;
    search.dataset.label = label;
    picker.querySelector(".picker-results").replaceChildren();
  };
  document.querySelectorAll("[data-picker]").forEach((picker) => {
    const search = picker.querySelector(".picker-search");
    const results = picker.querySelector(".picker-results");
    const first = () => results.querySelector("button.pick");
    search.addEventListener("focus", () => search.select());
    search.addEventListener("input", () => {
      // An emptied box is a link taken away.
      if (search.value.trim() === "") choose(picker, "", "");
    });
    search.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        first()?.click();
      } else if (event.key === "ArrowDown") {
        event.preventDefault();
        first()?.focus();
      } else if (event.key === "Escape") {
        choose(picker, picker.querySelector(".picker-value").value, search.dataset.label);
      }
    });
    results.addEventListener("click", (event) => {
      const button = event.target.closest("button.pick");
      if (button) choose(picker, button.dataset.id, button.dataset.label);
    });
    // Leaving the picker without choosing shows the current link again.
    picker.addEventListener("focusout", (event) => {
      if (picker.contains(event.relatedTarget)) return;
      search.value = search.dataset.label;
      results.replaceChildren();
    });
  });
});
