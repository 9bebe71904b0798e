/**
 * The meeting page's background control: none, blur, or an image chosen here (not stored: the stored
 * setting is changed on the home page). What cannot be applied says why, and the select shows what is
 * really sent.
 */
import { $ } from "./dom.js";

export function mountBackgroundControl(meeting) {
  const select = $("#background-mode");
  const file = $("#background-file");
  const show = () => {
    select.value = meeting.effect.mode;
    select.disabled = !meeting.localTracks.has("camera");
  };

  async function apply(mode, image = null) {
    // What went wrong is already on screen: the meeting's notice says it, and what is sent instead.
    await meeting.setBackground(mode, image).catch(() => {});
    show();
  }

  const onSelect = () => {
    if (select.value === "image") file.click(); // applied once a file is chosen
    else apply(select.value);
  };
  const onFile = () => {
    const chosen = file.files[0];
    file.value = "";
    if (chosen) apply("image", chosen);
    else show();
  };
  select.addEventListener("change", onSelect);
  file.addEventListener("change", onFile);
  const off = meeting.on("local_tracks", show);
  show();
  return () => {
    select.removeEventListener("change", onSelect);
    file.removeEventListener("change", onFile);
    off();
  };
}
