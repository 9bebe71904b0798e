/** Signed in: join a meeting, start one, and the settings (name, background, photo). */
import { $, busy, toast } from "./dom.js";

export function mountHome(api, { onJoin, onProfile }) {
  const join = $("#join-form");
  const create = $("#create-form");
  const settings = $("#settings-form");
  const backgroundImage = settings.elements.background_image;

  join.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(join);
    busy(join, () =>
      onJoin(data.get("meeting_id"), data.get("passcode").trim() || null, {
        camera: data.has("camera"),
        microphone: data.has("microphone"),
        videoCodec: data.get("video_codec"),
      }),
    );
  });

  create.addEventListener("submit", (event) => {
    event.preventDefault();
    const title = new FormData(create).get("title").trim();
    busy(create, async () => {
      const meeting = await api.createMeeting({ title: title || undefined });
      $("#created-id").textContent = formatMeetingId(meeting.meeting_id);
      $("#created-passcode").textContent = meeting.passcode;
      $("#created").hidden = false;
      $("#created").dataset.meetingId = meeting.meeting_id;
    });
  });
  $("#join-created").addEventListener("click", () => {
    join.elements.meeting_id.value = $("#created").dataset.meetingId;
    join.elements.passcode.value = "";
    join.requestSubmit();
  });

  // Settings: the image input appears when "Image" is chosen; saving uploads it first.
  settings.addEventListener("change", (event) => {
    if (event.target.name === "background") backgroundImage.hidden = event.target.value !== "image";
  });
  settings.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(settings);
    busy(settings, async () => {
      let current = await api.updateSettings({ display_name: data.get("display_name").trim() });
      const mode = data.get("background") ?? "none";
      const file = backgroundImage.files[0] ?? null;
      if (mode !== current.background.mode || (mode === "image" && file)) {
        if (mode === "image" && !file) throw new Error("choose an image for the background");
        current = await api.setBackground(mode, file);
      }
      render(current);
      toast("Settings saved");
    });
  });
  $("#photo-input").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    try {
      render(await api.setPhoto(file));
      toast("Photo updated");
    } catch (error) {
      toast(error.message, "error");
    } finally {
      event.target.value = "";
    }
  });

  function render(current) {
    settings.elements.display_name.value = current.display_name;
    for (const radio of settings.querySelectorAll("[name=background]")) {
      radio.checked = radio.value === current.background.mode;
    }
    backgroundImage.hidden = current.background.mode !== "image";
    const photo = $("#photo-preview");
    photo.hidden = !current.photo_url;
    if (current.photo_url) photo.src = api.mediaUrl(current.photo_url);
    onProfile(current);
  }

  return {
    /** Refresh from the API (after signing in). */
    async load() {
      try {
        render(await api.settings());
      } catch (error) {
        toast(error.message, "error");
      }
    },
    prefill(meetingId) {
      join.elements.meeting_id.value = meetingId;
    },
  };
}

export function formatMeetingId(id) {
  const digits = String(id);
  return digits.length === 10 ? `${digits.slice(0, 3)} ${digits.slice(3, 6)} ${digits.slice(6)}` : digits;
}
