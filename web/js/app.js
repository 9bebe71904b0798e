/**
 * The browser client of meetup-edge: plain ES modules, no build step.
 *
 *   api.js           the control-plane API (tokens, settings, uploads, meetings, chat)
 *   relay.js         the relay's signalling protocol and the RTCPeerConnection
 *   relay-select.js  nearest relay by measured round-trip time
 *   outbox.js        chat and reactions stored exactly once
 *   meeting.js       a joined meeting: local media, relay connection, reconnection, chat
 *   background.js    background blur / replace on the camera (MediaPipe, served from vendor/)
 *   recording*.js    record the meeting in the browser, keep it in IndexedDB, upload it (resumable)
 *   ui/*.js          the views: sign-in, home (join, create, settings), meeting (grid, controls, chat)
 *
 * The API's address comes from config.json ("" = this origin: the local stack serves this folder at
 * /app, and CloudFront sends the API's paths to the API).
 */
import { Api } from "./api.js";
import { Meeting } from "./meeting.js";
import { mountAuth } from "./ui/auth-view.js";
import { $, showView, toast } from "./ui/dom.js";
import { mountHome } from "./ui/home-view.js";
import { mountMeeting } from "./ui/meeting-view.js";
import { resumeUploads } from "./ui/recordings-panel.js";

const api = await Api.fromConfig();
/** For the browser's devtools (and the browser tests): the API client and the current meeting. */
window.meetup = { api, meeting: null };

const home = mountHome(api, { onJoin: join, onProfile: renderAccount });
const auth = mountAuth(api, route);
api.onSessionExpired = route;

$("#sign-out").addEventListener("click", async () => {
  await window.meetup.meeting?.leave();
  await api.logout();
  route();
});

async function join(meetingId, passcode, options) {
  const meeting = await Meeting.join(api, meetingId, passcode, options);
  window.meetup.meeting = meeting;
  history.replaceState(null, "", `#meeting=${meeting.meetingId}`);
  showView("view-meeting");
  mountMeeting(meeting, {
    onExit() {
      window.meetup.meeting = null;
      history.replaceState(null, "", location.pathname);
      route();
    },
  });
}

function renderAccount(profile) {
  $("#account-name").textContent = profile.display_name;
  if (api.session?.user) api.session.user.display_name = profile.display_name;
  const photo = $("#account-photo");
  photo.hidden = !profile.photo_url;
  if (profile.photo_url) photo.src = api.mediaUrl(profile.photo_url);
}

function route() {
  const signedIn = api.signedIn;
  $("#account").hidden = !signedIn;
  if (!signedIn) {
    auth.reset();
    showView("view-auth");
    return;
  }
  renderAccount(api.user);
  showView("view-home");
  home.load();
  // Recordings a closed tab or a dropped network left unfinished: continue where S3 stopped.
  resumeUploads(api, {
    onDone: (row, result) =>
      result instanceof Error
        ? toast(`${row.filename} is not uploaded yet: ${result.message}`, "error")
        : toast(`Recording ${row.filename} uploaded`),
  });
  const invited = location.hash.match(/meeting=(\d{10})/);
  if (invited) home.prefill(invited[1]);
}

route();
