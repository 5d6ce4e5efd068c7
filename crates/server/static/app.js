// crmsync's small script: shows only the chosen transport's settings in the sync form,
// and only the chosen table's fields when adding a field to a sync. Pages work without it.
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
});
