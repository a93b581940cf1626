//! The dashboard at `/dashboard`: its pages and headers over plain HTTP
//! (`pages`), and the whole of it in a real headless Chromium (`flows`).

mod browser;
mod flows;
mod pages;
