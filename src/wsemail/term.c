/*
 * term.c - output of untrusted text, and the password prompt.
 *
 * Everything a message's sender chose (subject, text, names) reaches the
 * terminal only through term_put, which replaces whatever could move the
 * cursor, change colours, retitle the window or reorder what is shown
 * (C0/C1 controls, DEL, bidi overrides, invalid UTF-8) by '?'.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "text.h"
#include "wsemail.h"

size_t
term_put(FILE *f, const char *str, int multiline, size_t max)
{
	const unsigned char *s = (const unsigned char *)(str ? str : "");
	size_t n = strlen((const char *)s), i = 0, len, count = 0;
	unsigned long cp;

	while (i < n && (max == 0 || count < max)) {
		if (multiline && (s[i] == '\n' || s[i] == '\t')) {
			fputc(s[i++], f);
			count++;
			continue;
		}
		if (multiline && s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') {
			i++;
			continue;
		}
		len = wse_utf8_next(s + i, n - i, &cp);
		if (len == 0 || wse_cp_unsafe(cp)) {
			fputc('?', f);
			i += len == 0 ? 1 : len;
		} else {
			fwrite(s + i, 1, len, f);
			i += len;
		}
		count++;
	}
	return count;
}

void
term_cell(FILE *f, const char *s, size_t width)
{
	size_t n = term_put(f, s, 0, width);

	for (; n < width; n++)
		fputc(' ', f);
}

int
term_utf8_ok(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, len;
	unsigned long cp;

	while (i < n) {
		if ((len = wse_utf8_next(s + i, n - i, &cp)) == 0)
			return 0;
		if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') ||
		    cp == 0x7f || cp == 0xfffe || cp == 0xffff)
			return 0;
		i += len;
	}
	return 1;
}

/* ---- the password prompt ---- */

static volatile sig_atomic_t got_sig;

static void
on_sig(int sig)
{
	got_sig = sig;
}

/* Signals that end the program while the terminal does not echo: caught
 * so that echo is restored first, then raised again. */
static const int prompt_sigs[] = { SIGINT, SIGHUP, SIGQUIT, SIGTERM };
/* Job control while the terminal does not echo: ignored. */
static const int ignored_sigs[] = { SIGTSTP, SIGTTIN, SIGTTOU };
#define NSIGS (sizeof(prompt_sigs) / sizeof(prompt_sigs[0]))
#define NIGN (sizeof(ignored_sigs) / sizeof(ignored_sigs[0]))

int
term_read_password(const char *prompt, char *buf, size_t size)
{
	struct sigaction sa, ign, old_sa[NSIGS], old_ign[NIGN];
	struct termios old_t, quiet;
	size_t i, n = 0;
	int fd, rc = -1, restore = 0, too_long = 0;
	char ch;
	ssize_t r;

	buf[0] = '\0';
	if ((fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)) == -1) {
		wse_err(WSE_ERR_IO, "no terminal to ask for the password on");
		return -1;
	}
	got_sig = 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sig;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;	/* no SA_RESTART: read() returns EINTR */
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	for (i = 0; i < NSIGS; i++)
		(void)sigaction(prompt_sigs[i], &sa, &old_sa[i]);
	for (i = 0; i < NIGN; i++)
		(void)sigaction(ignored_sigs[i], &ign, &old_ign[i]);
	if (tcgetattr(fd, &old_t) == 0) {
		quiet = old_t;
		quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		if (tcsetattr(fd, TCSAFLUSH, &quiet) == 0)
			restore = 1;
	}
	if (!restore) {
		wse_err(WSE_ERR_IO, "cannot turn the terminal's echo off");
		goto out;
	}
	(void)!write(fd, prompt, strlen(prompt));
	for (;;) {
		r = read(fd, &ch, 1);
		if (r == -1 && errno == EINTR && got_sig == 0)
			continue;
		if (r != 1 || got_sig != 0)
			break;
		if (ch == '\n' || ch == '\r') {
			rc = 0;
			break;
		}
		if (n + 1 < size)
			buf[n++] = ch;
		else
			too_long = 1;
	}
	(void)!write(fd, "\n", 1);
	buf[n] = '\0';
	if (rc == 0 && too_long) {
		rc = -1;
		wse_err(WSE_ERR_TOO_LARGE, "the password is longer than %zu "
		    "bytes", size - 1);
	} else if (rc != 0)
		wse_err(WSE_ERR_IO, "no password was entered");
out:
	if (restore)
		(void)tcsetattr(fd, TCSAFLUSH, &old_t);
	ch = 0;
	for (i = 0; i < NSIGS; i++)
		(void)sigaction(prompt_sigs[i], &old_sa[i], NULL);
	for (i = 0; i < NIGN; i++)
		(void)sigaction(ignored_sigs[i], &old_ign[i], NULL);
	close(fd);
	if (rc != 0)
		wse_memzero(buf, size);
	/* A signal that came during the prompt acts now, with the terminal
	 * as it was. */
	if (got_sig != 0)
		(void)raise(got_sig);
	return rc;
}
