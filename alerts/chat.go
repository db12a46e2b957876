package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// Slack posts alerts to a Slack incoming webhook: "text" (the
// notification and fallback, in Slack mrkdwn) plus Block Kit blocks (a
// header and one section per alert). Any receiver that reads only "text"
// (Mattermost, Rocket.Chat, a legacy Teams connector) shows the same list.
type Slack struct {
	p poster
	f Format
}

// Teams posts alerts to a Microsoft Teams webhook: "text" plus one
// Adaptive Card attachment in the message envelope that both the Teams
// Workflows app ("When a Teams webhook request is received", which only
// renders Adaptive Cards) and the retiring Office 365 incoming-webhook
// connector accept.
type Teams struct {
	p poster
	f Format
}

// NewSlack checks the options and returns the channel.
func NewSlack(o HTTPOptions, f Format) (*Slack, error) {
	p, err := newPoster("slack", o)
	if err != nil {
		return nil, err
	}
	return &Slack{p: p, f: f}, nil
}

// NewTeams checks the options and returns the channel.
func NewTeams(o HTTPOptions, f Format) (*Teams, error) {
	p, err := newPoster("teams", o)
	if err != nil {
		return nil, err
	}
	return &Teams{p: p, f: f}, nil
}

// String names the channel for logs without the webhook's token.
func (s *Slack) String() string { return "slack " + redactURL(s.p.URL.Reveal()) }

// String names the channel for logs without the webhook's token.
func (t *Teams) String() string { return "teams " + redactURL(t.p.URL.Reveal()) }

// Slack's documented limits: header text 150 characters, section text
// 3000, 50 blocks a message.
const (
	slackHeaderMax  = 150
	slackSectionMax = 3000
	slackMaxItems   = 45
)

// slackEscape escapes the three characters Slack treats as markup, so
// that a finding's target ("<!channel>") cannot ping anybody.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// SlackMessage is the JSON body Slack receives.
type SlackMessage struct {
	Text   string       `json:"text"`
	Blocks []SlackBlock `json:"blocks,omitempty"`
}

// SlackBlock is one Block Kit block (header, section or context).
type SlackBlock struct {
	Type     string       `json:"type"`
	Text     *SlackText   `json:"text,omitempty"`
	Elements []*SlackText `json:"elements,omitempty"`
}

// SlackText is a Block Kit text object.
type SlackText struct {
	Type string `json:"type"` // plain_text | mrkdwn
	Text string `json:"text"`
}

func (s *Slack) message(as []Alert) SlackMessage {
	f := s.f
	if f.MaxItems <= 0 || f.MaxItems > slackMaxItems {
		f.MaxItems = min(max(f.MaxItems, DefaultMaxItems), slackMaxItems)
	}
	d := f.digest(as)
	var text strings.Builder
	text.WriteString(slackEscape(d.Subject))
	m := SlackMessage{Blocks: []SlackBlock{{Type: "header", Text: &SlackText{Type: "plain_text", Text: truncate(d.Subject, slackHeaderMax)}}}}
	for _, a := range d.Items {
		line := "*" + slackEscape(a.headline()) + "*"
		if a.Details != "" {
			line += "\n" + slackEscape(oneLine(a.Details))
		}
		for _, l := range a.Links {
			line += "\n<" + slackEscape(l.URL) + "|" + slackEscape(oneLine(l.Title)) + ">"
		}
		text.WriteString("\n• " + slackEscape(a.headline()))
		m.Blocks = append(m.Blocks, SlackBlock{Type: "section", Text: &SlackText{Type: "mrkdwn", Text: truncate(line, slackSectionMax)}})
	}
	if d.More > 0 {
		text.WriteString("\n" + moreLine(d.More))
		m.Blocks = append(m.Blocks, SlackBlock{Type: "context", Elements: []*SlackText{{Type: "mrkdwn", Text: moreLine(d.More)}}})
	}
	m.Text = text.String()
	return m
}

// Send posts all alerts as one message.
func (s *Slack) Send(ctx context.Context, as []Alert) error {
	if len(as) == 0 {
		return nil
	}
	body, err := json.Marshal(s.message(as))
	if err != nil {
		return fmt.Errorf("slack: %w", err)
	}
	return s.p.post(ctx, body, nil)
}

// TeamsMessage is the JSON body Teams receives: a Bot Framework message
// with an Adaptive Card attachment, and "text" for receivers that read
// only that.
type TeamsMessage struct {
	Type        string            `json:"type"`
	Text        string            `json:"text"`
	Attachments []TeamsAttachment `json:"attachments"`
}

// TeamsAttachment wraps an Adaptive Card.
type TeamsAttachment struct {
	ContentType string       `json:"contentType"`
	ContentURL  *string      `json:"contentUrl"`
	Content     AdaptiveCard `json:"content"`
}

// AdaptiveCard is the card Teams renders.
type AdaptiveCard struct {
	Schema  string          `json:"$schema"`
	Type    string          `json:"type"`
	Version string          `json:"version"`
	Body    []AdaptiveBlock `json:"body"`
	MSTeams map[string]any  `json:"msteams,omitempty"`
}

// AdaptiveBlock is one TextBlock of an Adaptive Card.
type AdaptiveBlock struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	Wrap     bool   `json:"wrap"`
	Weight   string `json:"weight,omitempty"`
	Size     string `json:"size,omitempty"`
	IsSubtle bool   `json:"isSubtle,omitempty"`
	Spacing  string `json:"spacing,omitempty"`
}

// Adaptive Card constants Teams documents for webhook messages.
const (
	adaptiveContentType = "application/vnd.microsoft.card.adaptive"
	adaptiveSchema      = "http://adaptivecards.io/schemas/adaptive-card.json"
	adaptiveVersion     = "1.2"
)

func (t *Teams) message(as []Alert) TeamsMessage {
	d := t.f.digest(as)
	card := AdaptiveCard{Schema: adaptiveSchema, Type: "AdaptiveCard", Version: adaptiveVersion,
		MSTeams: map[string]any{"width": "Full"},
		Body:    []AdaptiveBlock{{Type: "TextBlock", Text: d.Subject, Wrap: true, Weight: "Bolder", Size: "Medium"}}}
	var text strings.Builder
	text.WriteString(d.Subject)
	for _, a := range d.Items {
		card.Body = append(card.Body, AdaptiveBlock{Type: "TextBlock", Text: a.headline(), Wrap: true, Weight: "Bolder", Spacing: "Medium"})
		detail := oneLine(a.Details)
		for _, l := range a.Links {
			detail += " [" + oneLine(l.Title) + "](" + l.URL + ")"
		}
		if detail = strings.TrimSpace(detail); detail != "" {
			card.Body = append(card.Body, AdaptiveBlock{Type: "TextBlock", Text: detail, Wrap: true, IsSubtle: true})
		}
		text.WriteString("\n\n- " + a.headline())
	}
	if d.More > 0 {
		card.Body = append(card.Body, AdaptiveBlock{Type: "TextBlock", Text: moreLine(d.More), Wrap: true, IsSubtle: true})
		text.WriteString("\n\n" + moreLine(d.More))
	}
	return TeamsMessage{Type: "message", Text: text.String(),
		Attachments: []TeamsAttachment{{ContentType: adaptiveContentType, Content: card}}}
}

// Send posts all alerts as one message.
func (t *Teams) Send(ctx context.Context, as []Alert) error {
	if len(as) == 0 {
		return nil
	}
	body, err := json.Marshal(t.message(as))
	if err != nil {
		return fmt.Errorf("teams: %w", err)
	}
	return t.p.post(ctx, body, nil)
}
